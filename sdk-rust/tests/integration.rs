//! Integration tests: every RPC against a real Engram server.
//!
//! The harness starts `engram-server serve` (from `ENGRAM_SERVER_BIN`, else
//! `../.venv/bin/engram-server`) on a free port with a fresh data directory, as
//! `docs/design/contracts.md` describes, waits for `GET /health`, runs the checks, and stops the
//! server with SIGTERM (SIGKILL after 10 s). One server serves the whole file; the checks run in
//! one test, in order, each a function named after what it checks.

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
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    fn start() -> Server {
        let bin = std::env::var_os("ENGRAM_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/engram-server")
            });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&bin)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--grpc-port", "0", "--api-key", ROOT_KEY, "--data-dir"])
            .arg(&data)
            .env("ENGRAM_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            log,
        };
        server.wait_healthy(port);
        server
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&mut self, port: u16) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_against_a_real_server() {
    let server = Server::start();
    let root = client(&server.url, Some(ROOT_KEY));
    let c = Checks {
        root,
        url: server.url.clone(),
    };

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
    c.delete_agents().await;
    c.quickstart_example().await;
    drop(server);
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
