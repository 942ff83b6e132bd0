import { EngramClient, MemoryType } from "engram-memory-client";

const client = new EngramClient({
  baseUrl: process.env.ENGRAM_URL ?? "http://127.0.0.1:3300",
  apiKey: process.env.ENGRAM_API_KEY,
});

// Remember something...
const { memory } = await client.store({
  agentId: "support-bot",
  content: "The customer prefers answers in French and uses the Pro plan.",
  memoryType: MemoryType.SEMANTIC,
  importance: 0.8,
  tags: ["preferences"],
});
console.log("stored", memory?.id);

// ...and recall it before the next model call.
const { memories } = await client.recall({
  agentId: "support-bot",
  query: "Which language should I answer in?",
  topK: 3,
});
for (const m of memories) {
  console.log(m.score.toFixed(3), m.content);
}

client.close();
