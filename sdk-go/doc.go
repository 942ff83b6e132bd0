// Package engram is the Go client of Engram, a self-hosted long-term memory server for AI agents.
//
// An agent stores what it learns with [Client.Store] and, before each model call, asks for what
// is relevant with [Client.Recall]:
//
//	client, err := engram.NewClient(ctx, "127.0.0.1:3300", engram.WithAPIKey(key))
//	if err != nil { ... }
//	defer client.Close()
//	_, err = client.Store(ctx, "support-bot", "The customer prefers answers in French.", nil)
//	res, err := client.Recall(ctx, "support-bot", "Which language should I answer in?", nil)
//
// The client speaks gRPC (HTTP/2; h2c unless TLS is configured) to the server's one port. Every
// method takes a [context.Context]; unary calls get the client's default timeout when the
// context has no deadline (see [WithTimeout]), and idempotent calls are retried on UNAVAILABLE
// (see [WithRetry]).
//
// [Client.Watch] follows the changes to an agent's memories as they happen, resuming after its
// last cursor when the connection drops; [StoreOptions] Key and DuplicatePolicy make stores
// upserts or merge duplicates, and [Client.Consolidate] merges the duplicates already stored.
//
// Errors returned by the client are *[Error] values carrying the gRPC code under the name every
// Engram SDK uses ("NOT_FOUND", "INVALID_ARGUMENT", ...); test them with [CodeOf], [IsNotFound]
// and friends, or [errors.As].
//
// Messages are the generated protobuf types, re-exported here as aliases ([Memory],
// [RecalledMemory], [Agent], ...), so that users never import the generated package
// (gen/engramv1) themselves. [Client.MemoryService] and its siblings expose the generated gRPC
// clients for anything the methods do not wrap.
package engram
