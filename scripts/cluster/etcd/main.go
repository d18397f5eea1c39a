// Command etcd is a thin entry point around etcd's server main, built in a
// wrapper module because `go install go.etcd.io/etcd/server/v3@...` is refused
// (etcd's own go.mod carries relative replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
