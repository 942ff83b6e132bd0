// Command etcd is the official etcd server (go.etcd.io/etcd/server/v3/etcdmain), built from the
// pinned module so that `make cluster` needs nothing installed by hand.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
