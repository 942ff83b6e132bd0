//! Quick start: store a few memories, recall the relevant ones, then clean up.
//! Run it with `ENGRAM_URL=http://127.0.0.1:3300 ENGRAM_API_KEY=<key> cargo run --example quickstart`.
use engram_client::{Client, MemoryType, RecallRequest, StoreMemoryRequest};

#[tokio::main]
async fn main() -> engram_client::Result<()> {
    let url = std::env::var("ENGRAM_URL").unwrap_or_else(|_| "http://127.0.0.1:3300".into());
    let api_key = std::env::var("ENGRAM_API_KEY").ok();
    run(&url, api_key.as_deref()).await.map(|_| ())
}

/// Stores, recalls and forgets; returns the content of the best match.
pub async fn run(url: &str, api_key: Option<&str>) -> engram_client::Result<String> {
    let mut builder = Client::builder().endpoint(url);
    if let Some(key) = api_key {
        builder = builder.api_key(key);
    }
    let client = builder.build()?;

    let agent = "quickstart-agent";
    for (content, importance) in [
        ("The user's name is Ada and she lives in Lisbon", 0.9),
        ("Ada prefers green tea to coffee", 0.7),
        ("The deploy failed with ERR_CONN_RESET on Tuesday", 0.5),
    ] {
        let request = StoreMemoryRequest::new(agent, content)
            .with_memory_type(MemoryType::Semantic)
            .with_importance(importance)
            .with_tags(["quickstart"]);
        client.store(request).await?;
    }

    let found = client
        .recall(RecallRequest::new(agent, "What does Ada like to drink?").with_top_k(2))
        .await?;
    for memory in &found.memories {
        println!("{:.3}  {}", memory.score, memory.content);
    }

    client.delete_agent(agent).await?;
    Ok(found
        .memories
        .first()
        .map(|m| m.content.clone())
        .unwrap_or_default())
}
