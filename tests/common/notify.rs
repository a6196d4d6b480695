//! Peers of the alerting tests: `tests/fixtures/notify_receiver.py` (a
//! notification receiver and a monitored service on Python's
//! http.server) and Debian's Alertmanager, each on 127.0.0.1 and killed
//! on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{debian_tool, free_port, http, python_fixture};

/// `tests/fixtures/notify_receiver.py` on `port`, its files in `dir`.
pub struct Receiver {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Receiver {
    pub fn start(dir: &Path, port: u16) -> Receiver {
        Receiver {
            child: python_fixture("notify_receiver.py", port, dir),
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Makes `GET /health` answer `code`.
    pub fn health(&self, code: u16) {
        std::fs::write(self.dir.join("health"), code.to_string()).unwrap();
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn at(&self, path: &str) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Alertmanager on 127.0.0.1, no cluster, a null receiver.
pub struct Alertmanager {
    child: Child,
    pub port: u16,
}

impl Alertmanager {
    pub fn start(dir: &Path) -> Alertmanager {
        Self::start_with(
            dir,
            "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
        )
    }

    pub fn start_with(dir: &Path, config: &str) -> Alertmanager {
        let bin = debian_tool("prometheus-alertmanager", "prometheus-alertmanager");
        let port = free_port();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("am.yml"), config).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("am.log")).unwrap())
            .spawn()
            .expect("starting alertmanager");
        let am = Alertmanager { child, port };
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/-/ready", &[], b"").status == 200
            {
                return am;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("alertmanager did not become ready");
    }

    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let r = http(
            self.port,
            "GET",
            "/api/v2/alerts?active=true&silenced=true&inhibited=true",
            &[],
            b"",
        );
        serde_json::from_str::<serde_json::Value>(&r.body)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent in this process, scheduling and delivering, for tests that
/// move its clock by hand (`notice_tick`, `queue_reminders`); sending
/// `true` on the returned channel stops both loops.
pub async fn in_process(
    config: warden::Config,
) -> (
    std::sync::Arc<warden::Agent>,
    tokio::sync::watch::Sender<bool>,
) {
    let agent = warden::Agent::start(config).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(agent.clone().run_scheduler(stopped.clone()));
    tokio::spawn(warden::alerting::deliver(
        agent.alerting.clone(),
        agent.store.clone(),
        stopped,
    ));
    (agent, stop)
}
