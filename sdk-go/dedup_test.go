package engram_test

import (
	"context"
	"slices"
	"testing"

	engram "github.com/engram-memory-server/engram/sdk-go"
)

func TestStoreOutcomes(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "outcome-agent-" + randomHex(4)

	first := must(c.Store(ctx, agent, "The user prefers window seats on long flights", &engram.StoreOptions{
		Importance: engram.Ptr[float32](0.4), Tags: []string{"travel"},
	}))
	if first.Outcome != engram.StoreOutcomeCreated || !first.Created {
		t.Fatalf("first Store = %v, want CREATED", first)
	}
	// The server's default policy (exact) merges the same text.
	merged := must(c.Store(ctx, agent, "the user prefers window seats on long flights.", &engram.StoreOptions{
		Importance: engram.Ptr[float32](0.9), Tags: []string{"seats"},
	}))
	if merged.Outcome != engram.StoreOutcomeMerged || merged.Created || merged.Memory.Id != first.Memory.Id ||
		merged.Memory.Version != 2 || merged.Memory.Importance != 0.9 || !slices.Equal(merged.Memory.Tags, []string{"travel", "seats"}) {
		t.Errorf("duplicate Store = %v, want MERGED into %s", merged, first.Memory.Id)
	}
	// DuplicatePolicyOff stores a copy.
	off := must(c.Store(ctx, agent, "The user prefers window seats on long flights", &engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyOff}))
	if off.Outcome != engram.StoreOutcomeCreated || off.Memory.Id == first.Memory.Id {
		t.Errorf("Store with DuplicatePolicyOff = %v, want a new memory", off)
	}
	// DuplicatePolicyNear merges a rephrasing within the threshold, and keeps unrelated facts.
	meeting := must(c.Store(ctx, agent, "The meeting was moved to Thursday", nil))
	near := must(c.Store(ctx, agent, "The meeting has been rescheduled to Thursday", &engram.StoreOptions{
		DuplicatePolicy: engram.DuplicatePolicyNear, DuplicateThreshold: engram.Ptr[float32](0.75),
	}))
	if near.Outcome != engram.StoreOutcomeMerged || near.Memory.Id != meeting.Memory.Id || near.Memory.Content != "The meeting has been rescheduled to Thursday" {
		t.Errorf("Store with DuplicatePolicyNear = %v, want MERGED into %s with the new text", near, meeting.Memory.Id)
	}
	unrelated := must(c.Store(ctx, agent, "The flight leaves on Monday morning", &engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyNear}))
	if unrelated.Outcome != engram.StoreOutcomeCreated {
		t.Errorf("unrelated Store with DuplicatePolicyNear = %v, want CREATED", unrelated)
	}
	// A client-chosen id is a safe retry: UNCHANGED.
	must(c.Store(ctx, agent, "Retried", &engram.StoreOptions{ID: "outcome-retry-" + agent}))
	retry := must(c.Store(ctx, agent, "Retried", &engram.StoreOptions{ID: "outcome-retry-" + agent}))
	if retry.Outcome != engram.StoreOutcomeUnchanged || retry.Created || retry.Memory.Version != 1 {
		t.Errorf("retried Store = %v, want UNCHANGED", retry)
	}

	// Upserts by key: the memory with the key is replaced.
	light := must(c.Store(ctx, agent, "theme: light", &engram.StoreOptions{Key: "prefs/theme", Tags: []string{"ui"}}))
	if light.Outcome != engram.StoreOutcomeCreated || light.Memory.Key != "prefs/theme" {
		t.Fatalf("Store with a new key = %v", light)
	}
	dark := must(c.Store(ctx, agent, "theme: dark", &engram.StoreOptions{Key: "prefs/theme"}))
	if dark.Outcome != engram.StoreOutcomeReplaced || dark.Memory.Id != light.Memory.Id || dark.Memory.Version != 2 ||
		dark.Memory.Content != "theme: dark" || dark.Memory.Key != "prefs/theme" || len(dark.Memory.Tags) != 0 {
		t.Errorf("Store with a used key = %v, want REPLACED", dark)
	}
	list := must(c.List(ctx, agent, &engram.ListOptions{Filter: &engram.Filter{Keys: []string{"prefs/theme"}}}))
	if list.TotalSize != 1 || list.Memories[0].Content != "theme: dark" {
		t.Errorf("List by key = %v", list)
	}
	rec := must(c.Recall(ctx, agent, "theme", &engram.RecallOptions{Filter: &engram.Filter{Keys: []string{"prefs/theme"}}}))
	if len(rec.Memories) != 1 || rec.Memories[0].Key != "prefs/theme" {
		t.Errorf("Recall by key = %v", rec)
	}
	if h := must(c.History(ctx, light.Memory.Id)); len(h) != 2 || h[0].Content != "theme: light" {
		t.Errorf("History of the upserted memory = %v", h)
	}
	other := must(c.Store(ctx, agent+"-2", "b's theme", &engram.StoreOptions{Key: "prefs/theme"}))
	if other.Outcome != engram.StoreOutcomeCreated {
		t.Errorf("a key of another agent = %v, want CREATED", other)
	}

	// Bad input: the server names the field.
	_, err := c.Store(ctx, agent, "x", &engram.StoreOptions{Key: "k", ID: "i"})
	wantCode(t, err, engram.CodeInvalidArgument)
	_, err = c.Store(ctx, agent, "x", &engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyNear, DuplicateThreshold: engram.Ptr[float32](1.5)})
	wantCode(t, err, engram.CodeInvalidArgument)

	// Batches report one outcome per item.
	batch := must(c.BatchStore(ctx, []engram.StoreItem{
		{AgentID: agent, Content: "Batch fact"},
		{AgentID: agent, Content: "batch fact."},
		{AgentID: agent, Content: "Another"},
		{AgentID: agent, Content: "theme: solarized", StoreOptions: engram.StoreOptions{Key: "prefs/theme"}},
	}))
	want := []engram.StoreOutcome{engram.StoreOutcomeCreated, engram.StoreOutcomeMerged, engram.StoreOutcomeCreated, engram.StoreOutcomeReplaced}
	if !slices.Equal(batch.Outcomes, want) || batch.CreatedCount != 2 || batch.Memories[3].Id != light.Memory.Id {
		t.Errorf("BatchStore = %v, want outcomes %v", batch, want)
	}
	_, err = c.BatchStore(ctx, []engram.StoreItem{
		{AgentID: agent, Content: "1", StoreOptions: engram.StoreOptions{Key: "twice"}},
		{AgentID: agent, Content: "2", StoreOptions: engram.StoreOptions{Key: "twice"}},
	})
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestConsolidate(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "consolidate-agent-" + randomHex(4)
	off := engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyOff}
	b := must(c.BatchStore(ctx, []engram.StoreItem{
		{AgentID: agent, Content: "The user is allergic to peanuts", StoreOptions: engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyOff, Importance: engram.Ptr[float32](0.9)}},
		{AgentID: agent, Content: "the user is allergic to peanuts!", StoreOptions: engram.StoreOptions{DuplicatePolicy: engram.DuplicatePolicyOff, Tags: []string{"health"}}},
		{AgentID: agent, Content: "Deploys run on Fridays", StoreOptions: off},
	}))
	keep, dup := b.Memories[0].Id, b.Memories[1].Id

	dry := must(c.Consolidate(ctx, agent, engram.DryRun()))
	if !dry.DryRun || dry.MergedCount != 0 || len(dry.Groups) != 1 || dry.Groups[0].KeepId != keep ||
		!slices.Equal(dry.Groups[0].DuplicateIds, []string{dup}) || dry.Groups[0].MinSimilarity < 0.95 {
		t.Fatalf("Consolidate(DryRun) = %v", dry)
	}
	if n := must(c.List(ctx, agent, nil)).TotalSize; n != 3 {
		t.Errorf("a dry run changed the agent: %d memories, want 3", n)
	}
	// A lower threshold groups more (here still only the peanuts).
	if res := must(c.Consolidate(ctx, agent, engram.DryRun(), engram.SimilarityThreshold(0.9))); len(res.Groups) != 1 {
		t.Errorf("Consolidate(DryRun, 0.9) = %v", res)
	}

	merged := must(c.Consolidate(ctx, agent))
	if merged.DryRun || merged.MergedCount != 1 || len(merged.Groups) != 1 || merged.Groups[0].KeepId != keep {
		t.Fatalf("Consolidate = %v", merged)
	}
	kept := must(c.Get(ctx, keep))
	if kept.Version != 2 || !slices.Contains(kept.Tags, "health") {
		t.Errorf("kept memory = %v, want version 2 with the duplicate's tag", kept)
	}
	_, err := c.Get(ctx, dup)
	wantCode(t, err, engram.CodeNotFound)
	if again := must(c.Consolidate(ctx, agent)); again.MergedCount != 0 || len(again.Groups) != 0 {
		t.Errorf("Consolidate again = %v, want nothing left", again)
	}

	_, err = c.Consolidate(ctx, agent, engram.SimilarityThreshold(0.2))
	wantCode(t, err, engram.CodeInvalidArgument)
	_, err = c.Consolidate(ctx, "")
	wantCode(t, err, engram.CodeInvalidArgument)

	// A dry run only reads; merging needs a key that may write.
	created := must(c.CreateAPIKey(ctx, "go-consolidate-ro", engram.APIKeyRoleReadOnly, nil))
	ro := client(t, engram.WithAPIKey(created.Key))
	if res := must(ro.Consolidate(ctx, agent, engram.DryRun())); len(res.Groups) != 0 {
		t.Errorf("read-only Consolidate(DryRun) = %v", res)
	}
	_, err = ro.Consolidate(ctx, agent)
	wantCode(t, err, engram.CodePermissionDenied)
}
