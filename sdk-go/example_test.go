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

func ExampleClient_Store_duplicates() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	// The same fact twice is one memory: the server merges it (its default duplicate policy).
	first, err := client.Store(ctx, "example-dedup", "The user prefers window seats.", nil)
	if err != nil {
		log.Fatal(err)
	}
	again, err := client.Store(ctx, "example-dedup", "the user prefers window seats", &engram.StoreOptions{Tags: []string{"travel"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first.Outcome, again.Outcome, again.Memory.Id == first.Memory.Id, again.Memory.Tags)

	// DuplicatePolicyNear also merges a rephrasing, within a cosine similarity.
	near, err := client.Store(ctx, "example-dedup", "The user likes to sit by the window.", &engram.StoreOptions{
		DuplicatePolicy:    engram.DuplicatePolicyNear,
		DuplicateThreshold: engram.Ptr[float32](0.7),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(near.Outcome, near.Memory.Id == first.Memory.Id, near.Memory.Content)
	// Output:
	// STORE_OUTCOME_CREATED STORE_OUTCOME_MERGED true [travel]
	// STORE_OUTCOME_MERGED true The user likes to sit by the window.
}

func ExampleClient_Store_upsert() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	// A key names the memory: storing with it again replaces the memory (a new version).
	for _, theme := range []string{"light", "dark"} {
		res, err := client.Store(ctx, "example-upsert", "Preferred theme: "+theme, &engram.StoreOptions{Key: "prefs/theme"})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.Outcome, res.Memory.Key, res.Memory.Version, res.Memory.Content)
	}
	page, err := client.List(ctx, "example-upsert", &engram.ListOptions{Filter: &engram.Filter{Keys: []string{"prefs/theme"}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(page.TotalSize)
	// Output:
	// STORE_OUTCOME_CREATED prefs/theme 1 Preferred theme: light
	// STORE_OUTCOME_REPLACED prefs/theme 2 Preferred theme: dark
	// 1
}

func ExampleClient_Consolidate() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	// Two copies of one fact, stored with duplicate detection off.
	off := engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyOff}
	for _, text := range []string{"The user is allergic to peanuts.", "the user is allergic to peanuts!", "Deploys run on Fridays."} {
		if _, err := client.Store(ctx, "example-consolidate", text, &off); err != nil {
			log.Fatal(err)
		}
	}
	// A dry run lists what would be merged...
	plan, err := client.Consolidate(ctx, "example-consolidate", engram.DryRun())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(plan.Groups), len(plan.Groups[0].DuplicateIds), plan.MergedCount)
	// ...and without it, the duplicates are merged into the kept memory.
	done, err := client.Consolidate(ctx, "example-consolidate")
	if err != nil {
		log.Fatal(err)
	}
	page, err := client.List(ctx, "example-consolidate", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.MergedCount, page.TotalSize)
	// Output:
	// 1 1 0
	// 1 2
}

func ExampleClient_Watch() {
	ctx := context.Background()
	client := exampleClient()
	defer client.Close()

	// Three changes...
	res, err := client.Store(ctx, "example-watch", "The build is green.", nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Update(ctx, res.Memory.Id, engram.MemoryUpdate{Content: engram.Ptr("The build is red.")}); err != nil {
		log.Fatal(err)
	}
	if err := client.Delete(ctx, res.Memory.Id); err != nil {
		log.Fatal(err)
	}

	// ...replayed from the oldest change the server retains. A watch never ends on its own:
	// break (or cancel ctx) when done. Save ev.Cursor to resume with StartAfter(cursor).
	n := 0
	for ev, err := range client.Watch(ctx, "example-watch", engram.StartAfter(engram.OldestCursor)) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Memory != nil {
			fmt.Println(ev.Type, ev.Version, ev.Memory.Content)
		} else {
			fmt.Println(ev.Type, ev.Version)
		}
		if n++; n == 3 {
			break
		}
	}
	// Output:
	// MEMORY_EVENT_TYPE_CREATED 1 The build is green.
	// MEMORY_EVENT_TYPE_UPDATED 2 The build is red.
	// MEMORY_EVENT_TYPE_DELETED 2
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
