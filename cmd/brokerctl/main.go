// Command brokerctl is the operator's command line for a Rewind Broker's admin API: it
// registers, inspects and removes terminals and lists live sessions. See `brokerctl --help`.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
