//! Integration tests: every RPC against a real Engram server.
//!
//! The harness starts `engram-server serve` (from `ENGRAM_SERVER_BIN`, else
//! `../.venv/bin/engram-server`) on a free port with a fresh data directory, as
//! `docs/design/contracts.md` describes, waits for `GET /health`, runs the checks, and stops the
//! server with SIGTERM (SIGKILL after 10 s). One server serves most of the file; its checks run in
//! one test, in order, each a function named after what it checks. The change-stream tests that
//! restart a server, or need one that keeps few changes, start their own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engram_client::*;

#[allow(dead_code, reason = "main() of the example is not called from here")]
#[path = "../examples/quickstart.rs"]
mod quickstart;

const ROOT_KEY: &str = "engram-rust-sdk-test-root-key";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Server {
    child: Child,
    url: String,
    port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    args: Vec<String>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with extra `serve` options.
    fn start_with(args: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = Server::spawn(port, &dir, &log, &args);
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            log,
            args,
        };
        server.wait_healthy();
        server
    }

    fn spawn(port: u16, dir: &tempfile::TempDir, log: &PathBuf, args: &[String]) -> Child {
        let bin = std::env::var_os("ENGRAM_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/engram-server")
            });
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Command::new(&bin)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--grpc-port", "0", "--api-key", ROOT_KEY, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .env("ENGRAM_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and data directory.
    fn restart(&mut self) {
        self.stop();
        self.child = Server::spawn(self.port, &self.dir, &self.log, &self.args);
        self.wait_healthy();
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("engram-server exited with {status}:\n{}", self.logs());
            }
            if http_status(port, "/health") == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!("engram-server not healthy after 60 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    /// SIGTERM, then SIGKILL after 10 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of `GET path`, or `None` when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn client(url: &str, key: Option<&str>) -> Client {
    let mut builder = Client::builder()
        .endpoint(url)
        .timeout(Duration::from_secs(60));
    if let Some(key) = key {
        builder = builder.api_key(key);
    }
    builder.build().expect("client builds")
}

fn code_of<T: std::fmt::Debug>(result: Result<T>) -> &'static str {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code_name(),
    }
}

const AGENT: &str = "rust-it-agent";
const OTHER: &str = "rust-it-other";
const DEDUP: &str = "rust-it-dedup";
const CONSOLIDATED: &str = "rust-it-consolidate";
const WATCHED: &str = "rust-it-watch";

/// The next event of a watch, within 30 s.
async fn next_event(watch: &mut WatchStream) -> Result<MemoryEvent> {
    tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("an event within 30 s")
        .expect("a watch does not end while it works")
}

/// The numeric value of a cursor (they are decimal digits; the tests check their order).
fn position(cursor: &str) -> u64 {
    cursor
        .parse()
        .unwrap_or_else(|_| panic!("cursor {cursor:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_against_a_real_server() {
    let server = Server::start();
    let root = client(&server.url, Some(ROOT_KEY));
    let c = Checks {
        root,
        url: server.url.clone(),
    };

    // Runs beside the other checks: it waits for a heartbeat (15 s).
    let heartbeat = tokio::spawn(heartbeats_are_hidden(c.root.clone()));
    c.health_and_info().await;
    c.auth_is_required().await;
    let ids = c.store_and_batch_store().await;
    c.get_update_history_delete(&ids).await;
    c.list_and_stream(ids.len()).await;
    c.recall_and_batch_recall().await;
    c.links_and_graph(&ids).await;
    c.export_and_import().await;
    c.forget().await;
    c.agents().await;
    c.admin().await;
    c.embed().await;
    c.invalid_arguments().await;
    c.deadline().await;
    c.api_keys_and_scopes().await;
    c.duplicates_and_upserts().await;
    c.consolidate().await;
    c.watch().await;
    c.delete_agents().await;
    c.quickstart_example().await;
    heartbeat.await.expect("heartbeat check");
    drop(server);
}

/// While nothing changes the server sends a heartbeat every 15 s: the event stream yields
/// nothing but its cursor moves on; the raw responses show it (no events, a cursor).
async fn heartbeats_are_hidden(root: Client) {
    const IDLE: &str = "rust-it-idle";
    let mut events = root.watch(IDLE, "");
    let mut responses = root.watch(IDLE, "").into_responses();
    let (nothing, heartbeat) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), events.next()),
        tokio::time::timeout(Duration::from_secs(20), responses.next()),
    );
    assert!(nothing.is_err(), "no event: {nothing:?}");
    let heartbeat = heartbeat
        .expect("a heartbeat within 20 s")
        .expect("a response")
        .expect("no error");
    assert!(heartbeat.events.is_empty());
    assert!(!heartbeat.cursor.is_empty());
    assert!(
        !events.cursor().is_empty(),
        "the heartbeat moved the cursor"
    );
    position(events.cursor());
}

struct Checks {
    root: Client,
    url: String,
}

impl Checks {
    async fn health_and_info(&self) {
        let health = self.root.health().await.expect("health");
        assert_eq!(health.status, "healthy");
        assert!(!health.version.is_empty());
        // Health needs no key.
        let anonymous = client(&self.url, None);
        assert_eq!(
            anonymous.health().await.expect("anonymous health").status,
            "healthy"
        );

        let info = self.root.server_info().await.expect("server_info");
        assert_eq!(info.api_version, "v1");
        assert_eq!(info.version, health.version);
        assert!(!info.embedding_model.is_empty());
        assert!(info.embedding_dimensions > 0);
        assert!(info.auth_required);
        let limits = info.limits.expect("limits");
        assert_eq!(limits.max_top_k, 100);
        assert_eq!(limits.max_batch_size, 256);
        assert_eq!(limits.max_page_size, 1000);
        assert_eq!(limits.max_content_bytes, 32768);
    }

    async fn auth_is_required(&self) {
        let anonymous = client(&self.url, None);
        let err = anonymous
            .store(StoreMemoryRequest::new(AGENT, "no key"))
            .await
            .expect_err("store without a key");
        assert!(err.is_unauthenticated(), "{err:?}");
        assert!(err.is_from_server());
        let wrong = client(&self.url, Some("not-a-key"));
        assert_eq!(
            code_of(wrong.recall(RecallRequest::new(AGENT, "x")).await),
            "UNAUTHENTICATED"
        );
    }

    async fn store_and_batch_store(&self) -> Vec<String> {
        let stored = self
            .root
            .store(
                StoreMemoryRequest::new(AGENT, "The user's name is Ada and she lives in Lisbon")
                    .with_memory_type(MemoryType::Semantic)
                    .with_importance(0.9)
                    .with_tags(["profile", "user"])
                    .with_metadata("source", "chat")
                    .with_metadata("turn", 3)
                    .with_session_id("s1"),
            )
            .await
            .expect("store");
        assert!(stored.created);
        let m = &stored.memory;
        assert!(!m.id.is_empty());
        assert_eq!(m.agent_id, AGENT);
        assert_eq!(m.memory_type(), MemoryType::Semantic);
        assert!((m.importance - 0.9).abs() < 1e-6);
        assert_eq!(m.tags, ["profile", "user"]);
        assert_eq!(m.session_id, "s1");
        assert_eq!(m.version, 1);
        assert!(m.created_at.is_some() && m.updated_at.is_some() && m.event_time.is_some());
        assert!(!m.embedding_model.is_empty());
        let meta = m.metadata.as_ref().expect("metadata");
        assert_eq!(
            meta.fields["source"],
            engram_client::IntoValue::into_value("chat")
        );

        // A client id makes the store idempotent.
        let req = StoreMemoryRequest::new(AGENT, "Ada prefers green tea to coffee")
            .with_id("tea-pref")
            .with_tags(["preferences"])
            .with_importance(0.7);
        let first = self.root.store(req.clone()).await.expect("store with id");
        assert!(first.created);
        assert_eq!(first.memory.id, "tea-pref");
        let again = self.root.store(req).await.expect("store again");
        assert!(!again.created);
        assert_eq!(again.memory.id, "tea-pref");
        let clash = self
            .root
            .store(StoreMemoryRequest::new(AGENT, "something else").with_id("tea-pref"))
            .await;
        assert_eq!(code_of(clash), "ALREADY_EXISTS");

        let batch = self
            .root
            .batch_store([
                StoreMemoryRequest::new(AGENT, "The deploy failed with ERR_CONN_RESET on Tuesday")
                    .with_tags(["ops", "scratch"]),
                StoreMemoryRequest::new(AGENT, "Deploys happen on Tuesdays after the standup")
                    .with_memory_type(MemoryType::Procedural)
                    .with_tags(["ops"]),
                StoreMemoryRequest::new(AGENT, "Temporary note: remember to buy milk")
                    .with_memory_type(MemoryType::Working)
                    .with_tags(["scratch"]),
            ])
            .await
            .expect("batch_store");
        assert_eq!(batch.memories.len(), 3);
        assert_eq!(batch.created_count, 3);
        assert_eq!(
            batch.memories[2].content,
            "Temporary note: remember to buy milk"
        );

        let mut ids = vec![stored.memory.id.clone(), first.memory.id.clone()];
        ids.extend(batch.memories.iter().map(|m| m.id.clone()));
        ids
    }

    async fn get_update_history_delete(&self, ids: &[String]) {
        let got = self.root.get(&ids[0]).await.expect("get");
        assert_eq!(
            got.content,
            "The user's name is Ada and she lives in Lisbon"
        );
        let scoped = self
            .root
            .get(GetMemoryRequest::new(&ids[0]).with_agent_id(AGENT))
            .await
            .expect("get with agent");
        assert_eq!(scoped.id, ids[0]);
        assert_eq!(code_of(self.root.get("no-such-memory").await), "NOT_FOUND");
        let wrong_agent = self
            .root
            .get(GetMemoryRequest::new(&ids[0]).with_agent_id(OTHER))
            .await;
        assert_eq!(code_of(wrong_agent), "NOT_FOUND");

        let updated = self
            .root
            .update(
                UpdateMemoryRequest::new(&ids[0])
                    .with_content("The user's name is Ada and she lives in Porto")
                    .with_importance(0.95),
            )
            .await
            .expect("update");
        assert_eq!(updated.version, 2);
        assert_eq!(
            updated.content,
            "The user's name is Ada and she lives in Porto"
        );
        assert!((updated.importance - 0.95).abs() < 1e-6);
        assert_eq!(
            updated.tags,
            ["profile", "user"],
            "fields outside the mask are kept"
        );
        let missing = self
            .root
            .update(UpdateMemoryRequest::new("no-such-memory").with_importance(0.1))
            .await;
        assert_eq!(code_of(missing), "NOT_FOUND");

        let history = self.root.history(&ids[0]).await.expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].version, 1);
        assert!(history[0].content.ends_with("Lisbon"));
        assert_eq!(history[1].version, 2);
        assert_eq!(
            code_of(self.root.history("no-such-memory").await),
            "NOT_FOUND"
        );

        // Delete a throw-away memory.
        let doomed = self
            .root
            .store(StoreMemoryRequest::new(AGENT, "to be deleted"))
            .await
            .expect("store");
        self.root.delete(&doomed.memory.id).await.expect("delete");
        assert_eq!(code_of(self.root.get(&doomed.memory.id).await), "NOT_FOUND");
        assert_eq!(
            code_of(self.root.delete(&doomed.memory.id).await),
            "NOT_FOUND"
        );
    }

    async fn list_and_stream(&self, count: usize) {
        let page = self
            .root
            .list(ListMemoriesRequest::new(AGENT).with_page_size(2))
            .await
            .expect("list");
        assert_eq!(page.memories.len(), 2);
        assert_eq!(page.total_size as usize, count);
        assert!(!page.next_page_token.is_empty());
        let next = self
            .root
            .list(
                ListMemoriesRequest::new(AGENT)
                    .with_page_size(2)
                    .with_page_token(&page.next_page_token),
            )
            .await
            .expect("second page");
        assert_ne!(next.memories[0].id, page.memories[0].id);

        let all: Vec<Memory> = self
            .root
            .memories_stream(ListMemoriesRequest::new(AGENT).with_page_size(2))
            .collect::<Result<_>>()
            .await
            .expect("stream");
        assert_eq!(all.len(), count);
        let mut ids: Vec<_> = all.iter().map(|m| m.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "pages do not repeat memories");

        let ops = self
            .root
            .list(
                ListMemoriesRequest::new(AGENT)
                    .with_filter(MemoryFilter::new().with_tags_any(["ops"])),
            )
            .await
            .expect("filtered list");
        assert_eq!(ops.total_size, 2);
        let by_importance = self
            .root
            .list(ListMemoriesRequest::new(AGENT).with_order_by("importance desc"))
            .await
            .expect("ordered list");
        let imp: Vec<f32> = by_importance
            .memories
            .iter()
            .map(|m| m.importance)
            .collect();
        assert!(imp.windows(2).all(|w| w[0] >= w[1]), "{imp:?}");
        let empty = self
            .root
            .list(ListMemoriesRequest::new("rust-it-nobody"))
            .await
            .expect("empty");
        assert_eq!(empty.total_size, 0);
    }

    async fn recall_and_batch_recall(&self) {
        let found = self
            .root
            .recall(RecallRequest::new(AGENT, "What does Ada like to drink?").with_top_k(2))
            .await
            .expect("recall");
        assert!(!found.memories.is_empty() && found.memories.len() <= 2);
        assert_eq!(found.memories[0].content, "Ada prefers green tea to coffee");
        assert!(found.total_found >= 1);
        assert!(found.memories.windows(2).all(|w| w[0].score >= w[1].score));

        let keyword = self
            .root
            .recall(
                RecallRequest::new(AGENT, "ERR_CONN_RESET")
                    .with_mode(RecallMode::Keyword)
                    .with_explain(true)
                    .with_top_k(1),
            )
            .await
            .expect("keyword recall");
        let top = &keyword.memories[0];
        assert!(top.content.contains("ERR_CONN_RESET"));
        assert!(top.keyword_score > 0.0);
        assert!(top.explanation.is_some());

        let filtered = self
            .root
            .recall(
                RecallRequest::new(AGENT, "deploy")
                    .with_filter(MemoryFilter::new().with_memory_types([MemoryType::Procedural])),
            )
            .await
            .expect("filtered recall");
        assert!(!filtered.memories.is_empty());
        assert!(
            filtered
                .memories
                .iter()
                .all(|m| m.memory_type() == MemoryType::Procedural)
        );

        let batch = self
            .root
            .batch_recall([
                RecallRequest::new(AGENT, "tea").with_top_k(1),
                RecallRequest::new(AGENT, "where does the user live").with_top_k(1),
            ])
            .await
            .expect("batch_recall");
        assert_eq!(batch.len(), 2);
        assert!(batch[1].memories[0].content.contains("Porto"));
    }

    async fn links_and_graph(&self, ids: &[String]) {
        let link = self
            .root
            .link(
                LinkMemoriesRequest::new(AGENT, &ids[0], &ids[1])
                    .with_relation("caused_by")
                    .with_weight(0.5),
            )
            .await
            .expect("link");
        assert_eq!(link.source_id, ids[0]);
        assert_eq!(link.target_id, ids[1]);
        assert_eq!(link.relation, "caused_by");
        assert!((link.weight - 0.5).abs() < 1e-6);
        self.root
            .link(LinkMemoriesRequest::new(AGENT, &ids[1], &ids[2]))
            .await
            .expect("second link");
        let missing = self
            .root
            .link(LinkMemoriesRequest::new(AGENT, &ids[0], "no-such-memory"))
            .await;
        assert_eq!(code_of(missing), "NOT_FOUND");

        let graph = self
            .root
            .graph(GetMemoryGraphRequest::new(AGENT, &ids[0]).with_depth(2))
            .await
            .expect("graph");
        assert_eq!(
            graph.memories[0].id, ids[0],
            "the starting memory comes first"
        );
        let reached: Vec<_> = graph.memories.iter().map(|m| m.id.as_str()).collect();
        assert!(
            reached.contains(&ids[1].as_str()) && reached.contains(&ids[2].as_str()),
            "{reached:?}"
        );
        assert_eq!(graph.links.len(), 2);
        let shallow = self
            .root
            .graph(GetMemoryGraphRequest::new(AGENT, &ids[0]).with_depth(1))
            .await
            .expect("graph depth 1");
        assert_eq!(shallow.memories.len(), 2);

        let removed = self
            .root
            .unlink(UnlinkMemoriesRequest::new(AGENT, &ids[1], &ids[2]))
            .await
            .expect("unlink");
        assert_eq!(removed, 1);
        let none = self
            .root
            .unlink(UnlinkMemoriesRequest::new(AGENT, &ids[1], &ids[2]))
            .await
            .expect("unlink again");
        assert_eq!(none, 0);
    }

    async fn export_and_import(&self) {
        let exported: Vec<Memory> = self
            .root
            .export(AGENT)
            .await
            .expect("export")
            .collect::<Result<_>>()
            .await
            .expect("export stream");
        let total = self
            .root
            .list(ListMemoriesRequest::new(AGENT))
            .await
            .expect("list")
            .total_size;
        assert_eq!(exported.len(), total as usize);
        assert!(
            exported
                .iter()
                .all(|m| m.agent_id == AGENT && !m.embedding_model.is_empty())
        );

        let filtered: Vec<Memory> = self
            .root
            .export(
                ExportMemoriesRequest::new(AGENT)
                    .with_filter(MemoryFilter::new().with_tags_any(["ops"])),
            )
            .await
            .expect("filtered export")
            .collect::<Result<_>>()
            .await
            .expect("filtered export stream");
        assert_eq!(filtered.len(), 2);

        // Importing the export again skips every memory: ids are unique per server.
        let again = self.root.import(exported.clone()).await.expect("re-import");
        assert_eq!(again.imported_count, 0);
        assert_eq!(again.skipped_count as usize, exported.len());

        // Into another agent (with new ids, since ids are unique per server): times and
        // versions are kept.
        let into_other = exported.iter().cloned().map(|mut m| {
            m.id = format!("copy-{}", m.id);
            ImportMemoriesRequest::new(m).with_agent_id(OTHER)
        });
        let imported = self.root.import(into_other).await.expect("import");
        assert_eq!(imported.imported_count as usize, exported.len());
        assert_eq!(imported.skipped_count, 0);
        let copy = self
            .root
            .get(GetMemoryRequest::new(format!("copy-{}", exported[0].id)).with_agent_id(OTHER))
            .await
            .expect("imported memory keeps its id");
        assert_eq!(copy.content, exported[0].content);
        assert_eq!(copy.version, exported[0].version);
        assert_eq!(copy.created_at, exported[0].created_at);

        let recalled = self
            .root
            .recall(RecallRequest::new(OTHER, "green tea").with_top_k(1))
            .await
            .expect("recall imported");
        assert_eq!(recalled.memories[0].agent_id, OTHER);
    }

    async fn forget(&self) {
        let scratch = MemoryFilter::new().with_tags_any(["scratch"]);
        let preview = self
            .root
            .forget(ForgetMemoriesRequest::new(AGENT, scratch.clone()).with_dry_run(true))
            .await
            .expect("forget dry run");
        assert!(preview.dry_run);
        assert_eq!(preview.matched_count, 2);
        assert_eq!(preview.deleted_count, 0);
        assert_eq!(preview.ids.len(), 2);
        let done = self
            .root
            .forget(ForgetMemoriesRequest::new(AGENT, scratch.clone()))
            .await
            .expect("forget");
        assert_eq!(done.deleted_count, 2);
        for id in &preview.ids {
            assert_eq!(code_of(self.root.get(id).await), "NOT_FOUND");
        }
        let empty = self
            .root
            .forget(ForgetMemoriesRequest::new(AGENT, MemoryFilter::new()))
            .await;
        assert_eq!(code_of(empty), "INVALID_ARGUMENT");
    }

    async fn agents(&self) {
        let page = self
            .root
            .list_agents(ListAgentsRequest::new())
            .await
            .expect("list_agents");
        let names: Vec<_> = page.agents.iter().map(|a| a.agent_id.as_str()).collect();
        assert!(
            names.contains(&AGENT) && names.contains(&OTHER),
            "{names:?}"
        );
        assert_eq!(page.total_size as usize, page.agents.len());
        let streamed: Vec<Agent> = self
            .root
            .agents_stream(ListAgentsRequest::new().with_page_size(1))
            .collect::<Result<_>>()
            .await
            .expect("agents_stream");
        assert_eq!(streamed.len(), page.agents.len());

        let agent = self.root.get_agent(AGENT).await.expect("get_agent");
        let live = self
            .root
            .list(ListMemoriesRequest::new(AGENT))
            .await
            .expect("list")
            .total_size;
        assert_eq!(agent.agent_id, AGENT);
        assert_eq!(agent.memory_count, live);
        assert!(agent.bytes_stored > 0);
        assert_eq!(agent.link_count, 1);
        assert!(agent.last_activity_at.is_some());
        assert_eq!(
            code_of(self.root.get_agent("rust-it-nobody").await),
            "NOT_FOUND"
        );
    }

    async fn admin(&self) {
        let stats = self.root.stats().await.expect("stats");
        assert!(stats.agent_count >= 2);
        assert!(stats.memory_count >= 3);
        assert!(stats.uptime_seconds > 0.0);
        let cluster = self.root.cluster_status().await.expect("cluster_status");
        assert_eq!(cluster.node_count, 1);
        assert_eq!(cluster.healthy_node_count, 1);
        assert_eq!(cluster.replication_factor, 1);
        assert_eq!(cluster.nodes.len(), 1);
        assert!(cluster.nodes[0].healthy);
        // A single server has no cluster to drain a node from.
        let drain = self
            .root
            .drain_cluster_node(cluster.nodes[0].node_id.as_str())
            .await;
        assert_eq!(code_of(drain), "FAILED_PRECONDITION");
    }

    async fn embed(&self) {
        let dims = self
            .root
            .server_info()
            .await
            .expect("info")
            .embedding_dimensions as usize;
        let out = self
            .root
            .embed(
                EmbedRequest::new(["green tea", "black coffee"])
                    .with_input_type(EmbeddingInputType::Query),
            )
            .await
            .expect("embed");
        assert_eq!(out.dimensions, dims);
        assert_eq!(out.vectors.len(), 2);
        assert!(!out.model.is_empty());
        for v in &out.vectors {
            assert_eq!(v.len(), dims);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "L2-normalised, got {norm}");
        }
        let empty = self
            .root
            .embed(EmbedRequest::new(Vec::<String>::new()))
            .await;
        assert_eq!(code_of(empty), "INVALID_ARGUMENT");
    }

    async fn invalid_arguments(&self) {
        let err = self
            .root
            .store(StoreMemoryRequest::new(AGENT, ""))
            .await
            .expect_err("empty content");
        assert!(err.is_invalid_argument(), "{err:?}");
        assert!(
            err.message().contains("content"),
            "the message names the field: {err}"
        );
        let bad = err.bad_request().expect("a google.rpc.BadRequest detail");
        assert!(
            bad.field_violations
                .iter()
                .any(|v| v.field.contains("content")),
            "{bad:?}"
        );
        let big = self
            .root
            .recall(RecallRequest::new(AGENT, "x").with_top_k(1000))
            .await;
        assert_eq!(code_of(big), "INVALID_ARGUMENT");
        let importance = self
            .root
            .store(StoreMemoryRequest::new(AGENT, "x").with_importance(1.5))
            .await;
        assert_eq!(code_of(importance), "INVALID_ARGUMENT");
        let no_agent = self.root.store(StoreMemoryRequest::new("", "x")).await;
        assert_eq!(code_of(no_agent), "INVALID_ARGUMENT");
    }

    async fn deadline(&self) {
        let hasty = self.root.with_timeout(Duration::from_nanos(1));
        let err = hasty
            .recall(RecallRequest::new(AGENT, "tea"))
            .await
            .expect_err("a 1 ns deadline passes");
        assert!(err.is_deadline_exceeded(), "{err:?}");
    }

    async fn api_keys_and_scopes(&self) {
        let created = self
            .root
            .create_api_key(
                CreateApiKeyRequest::new("rust-reader", ApiKeyRole::ReadOnly)
                    .with_agent_ids([AGENT]),
            )
            .await
            .expect("create_api_key");
        assert!(!created.key.is_empty());
        assert_eq!(created.api_key.name, "rust-reader");
        assert_eq!(created.api_key.role(), ApiKeyRole::ReadOnly);
        assert_eq!(created.api_key.agent_ids, [AGENT]);
        assert!(created.key.starts_with(&created.api_key.prefix));

        let listed = self.root.list_api_keys(false).await.expect("list_api_keys");
        let mine = listed
            .iter()
            .find(|k| k.id == created.api_key.id)
            .expect("listed");
        assert_eq!(mine.name, "rust-reader");

        let reader = client(&self.url, Some(&created.key));
        let found = reader
            .recall(RecallRequest::new(AGENT, "tea").with_top_k(1))
            .await
            .expect("a read-only key recalls");
        assert!(!found.memories.is_empty());
        reader
            .list(ListMemoriesRequest::new(AGENT))
            .await
            .expect("a read-only key lists");
        let write = reader
            .store(StoreMemoryRequest::new(AGENT, "not allowed"))
            .await;
        assert_eq!(code_of(write), "PERMISSION_DENIED");
        let other = reader.recall(RecallRequest::new(OTHER, "tea")).await;
        assert_eq!(
            code_of(other),
            "PERMISSION_DENIED",
            "the key is pinned to one agent"
        );
        assert_eq!(
            code_of(reader.stats().await),
            "PERMISSION_DENIED",
            "stats needs an admin key"
        );
        assert_eq!(
            code_of(
                reader
                    .create_api_key(CreateApiKeyRequest::new("x", ApiKeyRole::Admin))
                    .await
            ),
            "PERMISSION_DENIED"
        );

        let writer = self
            .root
            .create_api_key(
                CreateApiKeyRequest::new("rust-writer", ApiKeyRole::ReadWrite)
                    .with_agent_id_prefix("rust-it-"),
            )
            .await
            .expect("create read-write key");
        let writer_client = client(&self.url, Some(&writer.key));
        writer_client
            .store(StoreMemoryRequest::new(OTHER, "written with a scoped key"))
            .await
            .expect("a read-write key stores in its scope");
        let outside = writer_client
            .store(StoreMemoryRequest::new("elsewhere", "x"))
            .await;
        assert_eq!(code_of(outside), "PERMISSION_DENIED");

        let revoked = self
            .root
            .revoke_api_key(&created.api_key.id)
            .await
            .expect("revoke");
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            code_of(reader.recall(RecallRequest::new(AGENT, "tea")).await),
            "UNAUTHENTICATED"
        );
        let active = self.root.list_api_keys(false).await.expect("list active");
        assert!(active.iter().all(|k| k.id != created.api_key.id));
        let all = self.root.list_api_keys(true).await.expect("list all");
        assert!(all.iter().any(|k| k.id == created.api_key.id));
        assert_eq!(
            code_of(self.root.revoke_api_key("no-such-key").await),
            "NOT_FOUND"
        );
    }

    async fn delete_agents(&self) {
        let live = self
            .root
            .get_agent(OTHER)
            .await
            .expect("get_agent")
            .memory_count;
        let erased = self.root.delete_agent(OTHER).await.expect("delete_agent");
        assert_eq!(erased, live);
        assert_eq!(code_of(self.root.get_agent(OTHER).await), "NOT_FOUND");
        let empty = self
            .root
            .list(ListMemoriesRequest::new(OTHER))
            .await
            .expect("list");
        assert_eq!(empty.total_size, 0);
        self.root.delete_agent(AGENT).await.expect("delete_agent");
    }

    async fn duplicates_and_upserts(&self) {
        let store = |req: StoreMemoryRequest| self.root.store(req);
        let first = store(
            StoreMemoryRequest::new(DEDUP, "The user prefers window seats on long flights")
                .with_importance(0.4)
                .with_tags(["travel"]),
        )
        .await
        .expect("store");
        assert_eq!(first.outcome, StoreOutcome::Created);
        assert!(first.created);

        // The same text up to case and punctuation is merged into the existing memory.
        let merged = store(
            StoreMemoryRequest::new(DEDUP, "the user prefers window seats on long flights.")
                .with_importance(0.9)
                .with_tags(["seats"]),
        )
        .await
        .expect("store a duplicate");
        assert_eq!(merged.outcome, StoreOutcome::Merged);
        assert!(!merged.created);
        assert_eq!(merged.memory.id, first.memory.id);
        assert_eq!(merged.memory.version, 2);
        assert!((merged.memory.importance - 0.9).abs() < 1e-6);
        assert_eq!(merged.memory.tags, ["travel", "seats"]);

        // DuplicatePolicy::Off keeps a copy.
        let copy = store(
            StoreMemoryRequest::new(DEDUP, "The user prefers window seats on long flights")
                .with_duplicate_policy(DuplicatePolicy::Off),
        )
        .await
        .expect("store a copy");
        assert_eq!(copy.outcome, StoreOutcome::Created);
        assert_ne!(copy.memory.id, first.memory.id);

        // NEAR also merges a rephrasing (here cosine ~0.8), the newer text winning...
        let meeting = store(StoreMemoryRequest::new(
            DEDUP,
            "The meeting was moved to Thursday",
        ))
        .await
        .expect("store");
        let rephrased = store(
            StoreMemoryRequest::new(DEDUP, "The meeting has been rescheduled to Thursday")
                .with_duplicate_policy(DuplicatePolicy::Near)
                .with_duplicate_threshold(0.7),
        )
        .await
        .expect("store a rephrasing");
        assert_eq!(rephrased.outcome, StoreOutcome::Merged);
        assert_eq!(rephrased.memory.id, meeting.memory.id);
        assert_eq!(
            rephrased.memory.content,
            "The meeting has been rescheduled to Thursday"
        );
        // ...but not an unrelated fact.
        let unrelated = store(
            StoreMemoryRequest::new(DEDUP, "The flight leaves on Monday morning")
                .with_duplicate_policy(DuplicatePolicy::Near),
        )
        .await
        .expect("store");
        assert_eq!(unrelated.outcome, StoreOutcome::Created);

        // A retry of a client id with the same content changes nothing.
        let req = StoreMemoryRequest::new(DEDUP, "Retried").with_id("dedup-retry");
        assert_eq!(
            store(req.clone()).await.expect("store").outcome,
            StoreOutcome::Created
        );
        let retried = store(req).await.expect("retry");
        assert_eq!(retried.outcome, StoreOutcome::Unchanged);
        assert_eq!(retried.memory.version, 1);

        // A key makes the store an upsert.
        let light = store(
            StoreMemoryRequest::new(DEDUP, "theme: light")
                .with_key("prefs/theme")
                .with_tags(["ui"]),
        )
        .await
        .expect("store with a key");
        assert_eq!(light.outcome, StoreOutcome::Created);
        assert_eq!(light.memory.key, "prefs/theme");
        let dark = store(StoreMemoryRequest::new(DEDUP, "theme: dark").with_key("prefs/theme"))
            .await
            .expect("upsert");
        assert_eq!(dark.outcome, StoreOutcome::Replaced);
        assert!(!dark.created);
        assert_eq!(dark.memory.id, light.memory.id);
        assert_eq!(dark.memory.version, 2);
        assert_eq!(dark.memory.content, "theme: dark");
        assert!(
            dark.memory.tags.is_empty(),
            "an upsert replaces every field"
        );
        let by_key = self
            .root
            .list(
                ListMemoriesRequest::new(DEDUP)
                    .with_filter(MemoryFilter::new().with_keys(["prefs/theme"])),
            )
            .await
            .expect("list by key");
        assert_eq!(by_key.total_size, 1);
        assert_eq!(by_key.memories[0].content, "theme: dark");
        let history = self.root.history(&dark.memory.id).await.expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].content, "theme: light");

        // Bad combinations are refused.
        let both = store(
            StoreMemoryRequest::new(DEDUP, "x")
                .with_key("k")
                .with_id("i"),
        )
        .await;
        assert_eq!(code_of(both), "INVALID_ARGUMENT");
        let threshold = store(
            StoreMemoryRequest::new(DEDUP, "x")
                .with_duplicate_policy(DuplicatePolicy::Near)
                .with_duplicate_threshold(1.5),
        )
        .await;
        assert_eq!(code_of(threshold), "INVALID_ARGUMENT");
        let same_key_twice = self
            .root
            .batch_store([
                StoreMemoryRequest::new(DEDUP, "1").with_key("twice"),
                StoreMemoryRequest::new(DEDUP, "2").with_key("twice"),
            ])
            .await;
        assert_eq!(code_of(same_key_twice), "INVALID_ARGUMENT");

        // A batch reports each item's outcome.
        let batch = self
            .root
            .batch_store([
                StoreMemoryRequest::new(DEDUP, "Batch fact"),
                StoreMemoryRequest::new(DEDUP, "batch fact."),
                StoreMemoryRequest::new(DEDUP, "Another batch fact").with_key("batch-key"),
            ])
            .await
            .expect("batch_store");
        assert_eq!(batch.created_count, 2);
        assert_eq!(
            batch.outcomes().collect::<Vec<_>>(),
            [
                StoreOutcome::Created,
                StoreOutcome::Merged,
                StoreOutcome::Created
            ]
        );
        assert_eq!(batch.memories[0].id, batch.memories[1].id);
    }

    async fn consolidate(&self) {
        let batch = self
            .root
            .batch_store([
                StoreMemoryRequest::new(CONSOLIDATED, "The user is allergic to peanuts")
                    .with_importance(0.9)
                    .with_duplicate_policy(DuplicatePolicy::Off),
                StoreMemoryRequest::new(CONSOLIDATED, "the user is allergic to peanuts!")
                    .with_tags(["health"])
                    .with_duplicate_policy(DuplicatePolicy::Off),
                StoreMemoryRequest::new(CONSOLIDATED, "Deploys run on Fridays")
                    .with_duplicate_policy(DuplicatePolicy::Off),
            ])
            .await
            .expect("batch_store");
        let (keep, dup) = (&batch.memories[0].id, &batch.memories[1].id);

        let preview = self
            .root
            .consolidate(ConsolidateMemoriesRequest::new(CONSOLIDATED).with_dry_run(true))
            .await
            .expect("consolidate dry run");
        assert!(preview.dry_run);
        assert_eq!(preview.merged_count, 0);
        assert_eq!(preview.groups.len(), 1);
        assert_eq!(&preview.groups[0].keep_id, keep);
        assert_eq!(preview.groups[0].duplicate_ids, std::slice::from_ref(dup));
        assert!(preview.groups[0].min_similarity >= 0.95);
        let listed = self
            .root
            .list(ListMemoriesRequest::new(CONSOLIDATED))
            .await
            .expect("list");
        assert_eq!(listed.total_size, 3, "a dry run changes nothing");

        // A read-only key may only look.
        let reader = self
            .root
            .create_api_key(CreateApiKeyRequest::new(
                "rust-it-consolidate-reader",
                ApiKeyRole::ReadOnly,
            ))
            .await
            .expect("create key");
        let reader = client(&self.url, Some(&reader.key));
        let looked = reader
            .consolidate(ConsolidateMemoriesRequest::new(CONSOLIDATED).with_dry_run(true))
            .await
            .expect("read-only dry run");
        assert_eq!(looked.groups.len(), 1);
        assert_eq!(
            code_of(reader.consolidate(CONSOLIDATED).await),
            "PERMISSION_DENIED"
        );

        let done = self
            .root
            .consolidate(CONSOLIDATED)
            .await
            .expect("consolidate");
        assert!(!done.dry_run);
        assert_eq!(done.merged_count, 1);
        assert_eq!(&done.groups[0].keep_id, keep);
        let kept = self.root.get(keep).await.expect("the kept memory");
        assert_eq!(kept.version, 2);
        assert_eq!(kept.tags, ["health"]);
        assert_eq!(code_of(self.root.get(dup).await), "NOT_FOUND");
        let again = self
            .root
            .consolidate(CONSOLIDATED)
            .await
            .expect("consolidate again");
        assert_eq!((again.merged_count, again.groups.len()), (0, 0));

        let bad = self
            .root
            .consolidate(
                ConsolidateMemoriesRequest::new(CONSOLIDATED).with_similarity_threshold(0.2),
            )
            .await;
        assert_eq!(code_of(bad), "INVALID_ARGUMENT");
    }

    async fn watch(&self) {
        let m = self
            .root
            .store(StoreMemoryRequest::new(WATCHED, "Watched memory"))
            .await
            .expect("store")
            .memory;
        self.root
            .update(UpdateMemoryRequest::new(&m.id).with_content("Watched memory, edited"))
            .await
            .expect("update");
        self.root.delete(&m.id).await.expect("delete");

        // Everything retained, in order.
        let mut watch = self.root.watch(WATCHED, "0");
        assert_eq!(watch.cursor(), "0");
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(next_event(&mut watch).await.expect("event"));
        }
        let types: Vec<_> = events.iter().map(|e| e.r#type()).collect();
        assert_eq!(
            types,
            [
                MemoryEventType::Created,
                MemoryEventType::Updated,
                MemoryEventType::Deleted
            ]
        );
        assert!(
            events
                .iter()
                .all(|e| e.memory_id == m.id && e.agent_id == WATCHED)
        );
        assert!(events.iter().all(|e| e.time.is_some()));
        assert_eq!(
            events.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2, 2]
        );
        assert_eq!(events[0].memory.as_ref().unwrap().content, "Watched memory");
        assert_eq!(
            events[1].memory.as_ref().unwrap().content,
            "Watched memory, edited"
        );
        assert!(events[2].memory.is_none());
        let positions: Vec<u64> = events.iter().map(|e| position(&e.cursor)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(position(watch.cursor()) >= positions[2]);
        assert_eq!(watch.reconnects(), 0);

        // Live: a change made while the watch waits arrives; another agent's does not.
        let reader = tokio::spawn(async move {
            let event = next_event(&mut watch).await;
            (watch, event)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.root
            .store(StoreMemoryRequest::new(OTHER, "Not watched"))
            .await
            .expect("store");
        let live = self
            .root
            .store(StoreMemoryRequest::new(WATCHED, "Live change"))
            .await
            .expect("store")
            .memory;
        let (watch, event) = reader.await.expect("reader");
        let event = event.expect("live event");
        assert_eq!(
            (event.r#type(), event.memory_id.as_str()),
            (MemoryEventType::Created, live.id.as_str())
        );
        assert_eq!(watch.cursor(), event.cursor);
        drop(watch); // cancels the call

        // Resuming after a cursor continues right after that event.
        let mut resumed = self.root.watch(WATCHED, events[0].cursor.clone());
        let next = next_event(&mut resumed).await.expect("resumed");
        assert_eq!(next.cursor, events[1].cursor);
        assert_eq!(next.r#type(), MemoryEventType::Updated);

        // The raw responses: the first holds every retained event of the agent.
        let mut responses = self.root.watch(WATCHED, "0").into_responses();
        let first = tokio::time::timeout(Duration::from_secs(30), responses.next())
            .await
            .expect("a response within 30 s")
            .expect("a response")
            .expect("no error");
        assert_eq!(first.events.len(), 4);
        assert_eq!(responses.cursor(), first.cursor);
        assert!(position(&first.cursor) >= position(&first.events[3].cursor));
        // Events a WatchStream has received but not yielded come first.
        let mut partly = self.root.watch(WATCHED, "0");
        next_event(&mut partly).await.expect("event");
        let mut rest = partly.into_responses();
        let pending = rest.next().await.expect("pending").expect("no error");
        assert_eq!(pending.events.len(), 3);
        assert_eq!(pending.events[0].cursor, events[1].cursor);

        // Every agent the key may access.
        let mut all = self.root.watch("", "0");
        let any = next_event(&mut all).await.expect("an event of some agent");
        assert!(!any.agent_id.is_empty());

        // Bad cursors and forbidden agents: one error, then the stream ends.
        for bad in ["yesterday", "9223372036854775807"] {
            let mut watch = self.root.watch(WATCHED, bad);
            let err = next_event(&mut watch).await.expect_err("a bad cursor");
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err}");
            assert!(err.is_from_server());
            assert!(
                watch.next().await.is_none(),
                "the stream ends after an error"
            );
        }
        let pinned = self
            .root
            .create_api_key(
                CreateApiKeyRequest::new("rust-it-watcher", ApiKeyRole::ReadOnly)
                    .with_agent_ids([WATCHED]),
            )
            .await
            .expect("create key");
        let pinned = client(&self.url, Some(&pinned.key));
        let mut mine = pinned.watch(WATCHED, "0");
        assert_eq!(
            next_event(&mut mine).await.expect("own agent").memory_id,
            m.id
        );
        let mut theirs = pinned.watch(OTHER, "0");
        let err = next_event(&mut theirs).await.expect_err("another agent");
        assert!(err.is_permission_denied(), "{err:?}");
    }

    async fn quickstart_example(&self) {
        let best = quickstart::run(&self.url, Some(ROOT_KEY))
            .await
            .expect("quickstart");
        assert_eq!(best, "Ada prefers green tea to coffee");
        assert_eq!(
            code_of(self.root.get_agent("quickstart-agent").await),
            "NOT_FOUND"
        );
    }
}

#[test]
fn readme_quick_start_is_the_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");
    let start = readme.find("```rust\n").expect("README has a rust block") + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("block ends");
    assert_eq!(
        &readme[start..end],
        example,
        "README quick start must equal examples/quickstart.rs"
    );
}

/// A watch resumes by itself when the server restarts (same data directory): every change once,
/// in order, none lost, none repeated; a saved cursor continues in a new watch; a cursor older
/// than what the server keeps is OUT_OF_RANGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_restarts_and_reports_expired_cursors() {
    watch_resumes_after_a_restart().await;
    expired_cursor_is_out_of_range().await;
}

async fn watch_resumes_after_a_restart() {
    let mut server = Server::start();
    let root = client(&server.url, Some(ROOT_KEY));
    let store = |content: &str, id: &str| {
        // A client id: the store is retried while the connection comes back.
        root.store(StoreMemoryRequest::new(AGENT, content).with_id(id))
    };
    let a = store("Before the restart, one", "a")
        .await
        .expect("store")
        .memory;
    let b = store("Before the restart, two", "b")
        .await
        .expect("store")
        .memory;

    let mut watch = root.watch(AGENT, "0");
    let mut events = vec![
        next_event(&mut watch).await.expect("event"),
        next_event(&mut watch).await.expect("event"),
    ];
    let c = store("Stored before the restart, read after", "c")
        .await
        .expect("store")
        .memory;

    // Read on while the server restarts under the open watch.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(
                next_event(&mut watch)
                    .await
                    .expect("event across the restart"),
            );
        }
        (watch, got)
    });
    let mut server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart");
    let d = store("Stored after the restart", "d")
        .await
        .expect("store after the restart")
        .memory;
    root.update(UpdateMemoryRequest::new(&a.id).with_content("Before the restart, one (edited)"))
        .await
        .expect("update");
    root.delete(&b.id).await.expect("delete");
    let (watch, got) = reader.await.expect("reader");
    events.extend(got);

    let seen: Vec<(MemoryEventType, &str)> = events
        .iter()
        .map(|e| (e.r#type(), e.memory_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (MemoryEventType::Created, a.id.as_str()),
            (MemoryEventType::Created, b.id.as_str()),
            (MemoryEventType::Created, c.id.as_str()),
            (MemoryEventType::Created, d.id.as_str()),
            (MemoryEventType::Updated, a.id.as_str()),
            (MemoryEventType::Deleted, b.id.as_str()),
        ],
        "every change once, in order"
    );
    let positions: Vec<u64> = events.iter().map(|e| position(&e.cursor)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(watch.reconnects() >= 1, "{watch:?}");

    // A cursor saved before another restart continues in a new watch.
    let saved = watch.cursor().to_owned();
    drop(watch);
    server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart");
    let e = store("Stored after the second restart", "e")
        .await
        .expect("store")
        .memory;
    let mut again = root.watch(AGENT, saved);
    let next = next_event(&mut again).await.expect("event");
    assert_eq!(
        (next.r#type(), next.memory_id.as_str()),
        (MemoryEventType::Created, e.id.as_str())
    );
    assert_eq!(again.reconnects(), 0);
    drop(server);
}

async fn expired_cursor_is_out_of_range() {
    // A server that keeps only the last 2 changes, pruned every 0.1 s.
    let server = Server::start_with(&[
        "--max-retained-events",
        "2",
        "--maintenance-interval",
        "0.1",
    ]);
    let root = client(&server.url, Some(ROOT_KEY));
    root.store(StoreMemoryRequest::new(AGENT, "one"))
        .await
        .expect("store");
    let mut watch = root.watch(AGENT, "0");
    let first = next_event(&mut watch).await.expect("event");
    drop(watch);
    for content in ["two", "three", "four"] {
        root.store(StoreMemoryRequest::new(AGENT, content))
            .await
            .expect("store");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        let mut watch = root.watch(AGENT, first.cursor.clone());
        match next_event(&mut watch).await {
            Err(err) => {
                assert!(
                    watch.next().await.is_none(),
                    "the stream ends after an error"
                );
                break err;
            }
            // Not pruned yet.
            Ok(_) => assert!(
                Instant::now() < deadline,
                "the first change is never pruned"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(err.code_name(), "OUT_OF_RANGE");
    assert!(err.is_from_server());
}
