package engram_test

import (
	"context"
	"fmt"
	"log"
	"os"

	engram "github.com/engram-memory-server/engram/sdk-go"
)

// The README's quick start: its main function is this example's body (TestReadmeQuickStart
// keeps the two identical). TestMain sets ENGRAM_URL and ENGRAM_API_KEY to its server.
func Example() {
	ctx := context.Background()
	client, err := engram.NewClient(ctx, os.Getenv("ENGRAM_URL"), engram.WithAPIKey(os.Getenv("ENGRAM_API_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Remember something...
	_, err = client.Store(ctx, "support-bot", "The customer prefers answers in French.", &engram.StoreOptions{
		Type:       engram.MemoryTypeSemantic,
		Importance: engram.Ptr[float32](0.8),
		Tags:       []string{"preferences"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// ...and recall it before the next model call.
	res, err := client.Recall(ctx, "support-bot", "Which language should I answer in?", &engram.RecallOptions{TopK: 3})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range res.Memories {
		fmt.Println(m.Content)
	}
	// Output: The customer prefers answers in French.
}
