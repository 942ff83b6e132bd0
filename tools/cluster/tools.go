//go:build tools

// Package tools pins nats-server, whose main package is built straight from its module.
package tools

import _ "github.com/nats-io/nats-server/v2"
