// Command kube-apiserver is a thin entry point around the upstream
// kube-apiserver command of k8s.io/kubernetes, so that it can be built from
// the Go module proxy (see scripts/test-cluster.sh build).
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones without a system tz database

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
