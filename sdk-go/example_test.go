package engram_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"time"

	engram "github.com/engram-memory-server/engram/sdk-go"
)

// exampleClient connects to the server TestMain started.
func exampleClient() *engram.Client {
	c, err := engram.NewClient(context.Background(), serverAddr, engram.WithAPIKey(rootKey))
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func ExampleNewClient() {
	ctx := context.Background()
	client, err := engram.NewClient(ctx, serverAddr, // e.g. "127.0.0.1:3300"
		engram.WithAPIKey(rootKey),
		engram.WithTimeout(5*time.Second),
		engram.WithRetry(engram.RetryPolicy{MaxAttempts: 5, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	health, err := client.Health(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(health.Status)
	// Output: healthy
}

func ExampleClient_Store() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	// A client-chosen id makes the store safe to retry: a repeat returns the same memory.
	for range 2 {
		res, err := client.Store(ctx, "example-store", "Deploys happen on Tuesdays at 10:00 UTC.", &engram.StoreOptions{
			ID:        "deploy-policy",
			Type:      engram.MemoryTypeProcedural,
			Tags:      []string{"ops"},
			Metadata:  map[string]any{"source": "runbook"},
			SessionID: "onboarding",
			TTL:       30 * 24 * time.Hour,
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.Memory.Id, res.Created, res.Memory.Version, res.Memory.MemoryType)
	}
	// Output:
	// deploy-policy true 1 MEMORY_TYPE_PROCEDURAL
	// deploy-policy false 1 MEMORY_TYPE_PROCEDURAL
}

func ExampleClient_Recall() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	_, err := client.BatchStore(ctx, []engram.StoreItem{
		{AgentID: "example-recall", Content: "The production database is PostgreSQL 16.", StoreOptions: engram.StoreOptions{Tags: []string{"infra"}}},
		{AgentID: "example-recall", Content: "The user's cat is called Miso.", StoreOptions: engram.StoreOptions{Tags: []string{"personal"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Recall(ctx, "example-recall", "which database do we use?", &engram.RecallOptions{
		TopK:    1,
		Filter:  &engram.Filter{TagsAny: []string{"infra"}},
		Explain: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range res.Memories {
		fmt.Println(m.Content, m.Score > 0, m.Explanation != nil)
	}
	// Output: The production database is PostgreSQL 16. true true
}

func ExampleClient_Update() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	res, err := client.Store(ctx, "example-update", "The meeting is on Monday.", nil)
	if err != nil {
		log.Fatal(err)
	}
	m, err := client.Update(ctx, res.Memory.Id, engram.MemoryUpdate{Content: engram.Ptr("The meeting moved to Wednesday.")})
	if err != nil {
		log.Fatal(err)
	}
	versions, err := client.History(ctx, m.Id)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range versions {
		fmt.Println(v.Version, v.Content)
	}
	// Output:
	// 1 The meeting is on Monday.
	// 2 The meeting moved to Wednesday.
}

func ExampleClient_Memories() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	for _, s := range []string{"first", "second", "third"} {
		if _, err := client.Store(ctx, "example-list", s+" note", nil); err != nil {
			log.Fatal(err)
		}
	}
	// Page after page (here of 2), oldest first.
	for m, err := range client.Memories(ctx, "example-list", &engram.ListOptions{PageSize: 2, OrderBy: "created_at asc"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.Content)
	}
	// Output:
	// first note
	// second note
	// third note
}

func ExampleClient_Export() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	if _, err := client.Store(ctx, "example-export", "Back me up.", nil); err != nil {
		log.Fatal(err)
	}
	var backup []*engram.Memory
	for m, err := range client.Export(ctx, "example-export", nil) {
		if err != nil {
			log.Fatal(err)
		}
		backup = append(backup, m)
	}
	// Erase the agent, then restore it from the backup, ids and times included.
	if _, err := client.DeleteAgent(ctx, "example-export"); err != nil {
		log.Fatal(err)
	}
	res, err := client.Import(ctx, slices.Values(backup), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(backup), res.ImportedCount, res.SkippedCount)
	// Output: 1 1 0
}

func ExampleClient_Link() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	b, err := client.BatchStore(ctx, []engram.StoreItem{
		{AgentID: "example-graph", Content: "The outage started at 09:12."},
		{AgentID: "example-graph", Content: "A bad config push caused the outage."},
	})
	if err != nil {
		log.Fatal(err)
	}
	outage, cause := b.Memories[0].Id, b.Memories[1].Id
	if _, err := client.Link(ctx, "example-graph", outage, cause, &engram.LinkOptions{Relation: "caused_by"}); err != nil {
		log.Fatal(err)
	}
	g, err := client.Graph(ctx, "example-graph", outage, &engram.GraphOptions{Depth: 2})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range g.Memories {
		fmt.Println(m.Content)
	}
	fmt.Println(g.Links[0].Relation)
	// Output:
	// The outage started at 09:12.
	// A bad config push caused the outage.
	// caused_by
}

func ExampleClient_CreateAPIKey() {
	ctx := context.Background()
	admin := exampleClient()
	defer admin.Close()

	// A read-only key pinned to one agent, e.g. for a dashboard.
	created, err := admin.CreateAPIKey(ctx, "dashboard", engram.APIKeyRoleReadOnly, &engram.APIKeyOptions{AgentIDs: []string{"example-keys"}})
	if err != nil {
		log.Fatal(err)
	}
	reader, err := engram.NewClient(ctx, serverAddr, engram.WithAPIKey(created.Key))
	if err != nil {
		log.Fatal(err)
	}
	defer reader.Close()
	_, err = reader.Store(ctx, "example-keys", "not allowed", nil)
	fmt.Println(engram.CodeOf(err))
	// Output: PERMISSION_DENIED
}

func ExampleClient_Embed() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	e, err := client.Embed(ctx, []string{"hello world"}, engram.EmbeddingInputTypeQuery)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(e.Vectors), e.Dimensions, len(e.Vectors[0]))
	// Output: 1 384 384
}

func ExampleIsNotFound() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	_, err := client.Get(ctx, "no-such-memory")
	fmt.Println(engram.IsNotFound(err))
	var e *engram.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.FromServer)
	}
	// Output:
	// true
	// NOT_FOUND true
}
