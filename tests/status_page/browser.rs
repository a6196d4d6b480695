//! The status page in a real browser: Debian's chromium, headless,
//! against the real agent with checks that pass, fail (in maintenance),
//! flap, recover and find a secret. What a person sees (statuses, tags,
//! the 90-day bars, uptime numbers, a check's runs, findings and
//! incidents) is read from the DOM chromium rendered after the page's
//! script ran, and compared with the API. Screenshots at desktop and
//! phone widths go to `$CARGO_TARGET_TMPDIR/screenshots`, and to
//! `$WARDEN_SCREENSHOTS` when set (`docs/screenshots` holds the README's).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{self, AgentProcess};

const TOKEN: &str = "ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2p";

fn chromium() -> PathBuf {
    common::debian_tool("chromium", "chromium")
}

/// Runs headless chromium on `url` with `args`, bounded in time; its
/// stdout.
fn chromium_run(profile: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-extensions",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium {args:?} {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of `path` once the page's script has rendered it.
fn dom(profile: &Path, port: u16, path: &str) -> String {
    let d = chromium_run(
        profile,
        &format!("http://127.0.0.1:{port}{path}"),
        &["--dump-dom"],
    );
    assert!(!d.contains("class=\"loading\""), "the script ran: {d}");
    d
}

/// A PNG of `path` at `width`×`height`; checks its size.
fn screenshot(profile: &Path, port: u16, path: &str, name: &str, width: u32, height: u32) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&file);
    chromium_run(
        profile,
        &format!("http://127.0.0.1:{port}{path}"),
        &[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={width},{height}"),
        ],
    );
    let png = std::fs::read(&file).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (width, height), "{name}'s size");
    assert!(
        png.len() > 10_000,
        "{name} is not blank: {} bytes",
        png.len()
    );
    if let Ok(to) = std::env::var("WARDEN_SCREENSHOTS") {
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(&file, Path::new(&to).join(format!("{name}.png"))).unwrap();
    }
}

/// The page's percentage: never rounded up to 100%.
fn pct(u: &serde_json::Value) -> String {
    match u.as_f64() {
        None => "–".into(),
        Some(u) if u >= 1.0 => "100%".into(),
        Some(u) => format!("{:.2}%", ((u * 10000.0 + 1e-9).floor()) / 100.0),
    }
}

/// The chunks of `dom` from each `marker` to the next.
fn chunks<'a>(dom: &'a str, marker: &str) -> Vec<&'a str> {
    dom.split(marker).skip(1).collect()
}

/// The value of `attr="..."` first in `chunk`.
fn attr<'a>(chunk: &'a str, attr: &str) -> Option<&'a str> {
    let start = chunk.find(&format!("{attr}=\""))? + attr.len() + 2;
    chunk[start..].split('"').next()
}

/// `chunk` after `data-window="w"`'s tag: the uptime shown and the value
/// it holds.
fn shown_uptime<'a>(chunk: &'a str, w: &str) -> (&'a str, f64) {
    let at = chunk
        .find(&format!("data-window=\"{w}\""))
        .unwrap_or_else(|| panic!("no {w} uptime in {chunk}"));
    let tag = &chunk[at..];
    let value = attr(tag, "data-uptime").map_or(f64::NAN, |v| v.parse().unwrap());
    let text = tag[tag.find('>').unwrap() + 1..].split('<').next().unwrap();
    (text, value)
}

fn run(agent: &AgentProcess, receiver: &common::notify::Receiver, check: &str, code: u16) {
    std::fs::write(
        receiver.dir.join(format!("health-{check}")),
        code.to_string(),
    )
    .unwrap();
    let r = common::http(
        agent.port,
        "POST",
        &format!("/v1/checks/{check}/run"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{check}: {}", r.body);
}

#[test]
fn the_page_shows_what_the_api_says_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium");
    let receiver = common::notify::Receiver::start(&dir.path().join("svc"), common::free_port());
    let p = receiver.port;
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("deploy.sh"),
        format!("export GITHUB_TOKEN={TOKEN}\n"),
    )
    .unwrap();
    let rfc = |secs: i64| {
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + secs, 0)
            .unwrap()
            .to_rfc3339()
    };
    let probe = |name: &str| {
        format!(
            "[[check]]\nname = \"{name}\"\nplugin = \"hello\"\nschedule = \"@every 24h\"\n\
             failure_threshold = 2\nsuccess_threshold = 1\n\
             config = {{ url = \"http://127.0.0.1:{p}/health/{name}\" }}\n\
             allow.hosts = [\"http://127.0.0.1:{p}\"]\n"
        )
    };
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [[maintenance]]\nname = \"db-upgrade\"\nchecks = [\"db\"]\nstart = \"{}\"\nend = \"{}\"\n\
         {}{}{}{}\
         [[check]]\nname = \"repo\"\nplugin = \"secret-scan\"\nschedule = \"@every 24h\"\n\
         allow.read_dirs = [\"{}\"]\n",
        rfc(-3600),
        rfc(3600),
        probe("api"),
        probe("db"),
        probe("cache"),
        probe("queue"),
        repo.display(),
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    // A history made by hand, each run waited for: `api` passes, `db`
    // fails, `cache` alternates, `queue` fails three times and recovers.
    for i in 0..8 {
        run(&agent, &receiver, "api", 200);
        run(&agent, &receiver, "db", 500);
        run(
            &agent,
            &receiver,
            "cache",
            if i % 2 == 0 { 200 } else { 500 },
        );
        if i < 5 {
            run(&agent, &receiver, "queue", if i < 3 { 500 } else { 200 });
        }
    }
    run(&agent, &receiver, "repo", 200);

    let checks = || agent.get("/v1/checks").json()["checks"].clone();
    let api_view = || {
        let uptimes: std::collections::BTreeMap<_, _> = ["api", "db", "cache", "queue", "repo"]
            .iter()
            .map(|n| {
                let u = agent.get(&format!("/v1/checks/{n}/uptime")).json();
                (n.to_string(), u["windows"].clone())
            })
            .collect();
        (checks(), uptimes)
    };
    // A scheduled run may land between reading the API and the page;
    // read until both reads of the API around the page agree.
    let (mut before, mut page) = (api_view(), String::new());
    for _ in 0..3 {
        page = dom(&profile, agent.port, "/");
        let after = api_view();
        if after == before {
            break;
        }
        before = after;
    }
    let (listed, uptimes) = before;

    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(
        page.contains("data-overall=\"critical\""),
        "db is critical, so the page is: {page}"
    );
    let cards = chunks(&page, "<li class=\"check\"");
    assert_eq!(cards.len(), 5, "one card per check: {page}");
    for c in listed.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let card = cards
            .iter()
            .find(|k| attr(k, "data-check") == Some(name))
            .unwrap_or_else(|| panic!("no card for {name}: {page}"));
        let status = c["status"].as_str().unwrap_or("pending");
        assert_eq!(attr(card, "data-status"), Some(status), "{name}: {card}");
        assert!(
            card.contains(&format!(">{}</span>", status.to_uppercase())),
            "{name}'s status is written out: {card}"
        );
        assert_eq!(
            card.matches("class=\"bar ").count(),
            90,
            "{name}: 90 daily bars"
        );
        assert!(
            card.contains("role=\"img\" aria-label=\"Daily uptime over the last 90 days: "),
            "the bars are labelled for screen readers: {card}"
        );
        for w in ["24h", "7d", "30d", "90d"] {
            let api = &uptimes[name][w]["summary"]["uptime"];
            let (text, value) = shown_uptime(card, w);
            assert_eq!(text, pct(api), "{name} {w}: {card}");
            if let Some(u) = api.as_f64() {
                assert_eq!(value, u, "{name} {w}");
            }
        }
        assert!(
            card.contains(&format!("href=\"/checks/{name}\"")),
            "{name} links to its page"
        );
        assert!(card.contains("<svg class=\"chart\""), "{name}: a chart");
    }
    let card = |name: &str| {
        *cards
            .iter()
            .find(|k| attr(k, "data-check") == Some(name))
            .unwrap()
    };
    assert!(
        card("db").contains("data-tag=\"quiet\"") && card("db").contains(">in maintenance<"),
        "{}",
        card("db")
    );
    assert!(
        card("cache").contains("data-tag=\"flapping\""),
        "{}",
        card("cache")
    );
    assert_eq!(attr(card("api"), "data-status"), Some("ok"));
    assert_eq!(attr(card("db"), "data-status"), Some("critical"));
    assert_eq!(attr(card("queue"), "data-status"), Some("ok"));
    assert!(!page.contains(TOKEN), "the secret never reaches the page");

    // A check's page: its runs as the API lists them, its incident with
    // the timeline from opened to resolved.
    let queue = dom(&profile, agent.port, "/checks/queue");
    let runs = agent.get("/v1/runs?check=queue&limit=50").json()["runs"].clone();
    let rows = chunks(&queue, "<tr data-run=");
    assert_eq!(rows.len(), runs.as_array().unwrap().len(), "{queue}");
    for (row, r) in rows.iter().zip(runs.as_array().unwrap()) {
        assert_eq!(attr(row, "data-status"), r["status"].as_str(), "{row}");
        let id = r["id"].to_string();
        assert!(row.starts_with(&format!("\"{id}\"")), "newest first: {row}");
    }
    let incidents = chunks(&queue, "<section class=\"incident");
    assert_eq!(incidents.len(), 1, "{queue}");
    let kinds: Vec<&str> = chunks(incidents[0], "data-kind=\"")
        .iter()
        .map(|k| k.split('"').next().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"opened"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"resolved"), "{kinds:?}");
    assert!(queue.contains("Resolved: critical, "), "{queue}");

    // Findings are shown redacted; never the secret.
    let repo_page = dom(&profile, agent.port, "/checks/repo");
    let findings = agent.get("/v1/findings?check=repo").json()["findings"].clone();
    assert!(!findings.as_array().unwrap().is_empty(), "{findings}");
    assert_eq!(
        chunks(&repo_page, "<tr data-finding=").len(),
        findings.as_array().unwrap().len(),
        "{repo_page}"
    );
    assert!(repo_page.contains("deploy.sh"), "{repo_page}");
    assert!(!repo_page.contains(TOKEN), "{repo_page}");

    // A check that does not exist.
    let missing = dom(&profile, agent.port, "/checks/nope");
    assert!(missing.contains("no check named"), "{missing}");

    screenshot(&profile, agent.port, "/", "status-desktop", 1280, 1100);
    screenshot(&profile, agent.port, "/", "status-phone", 390, 844);
    screenshot(
        &profile,
        agent.port,
        "/checks/queue",
        "check-desktop",
        1280,
        1100,
    );
    screenshot(
        &profile,
        agent.port,
        "/checks/queue",
        "check-phone",
        390,
        844,
    );
}

#[test]
fn with_a_token_for_reads_the_page_shows_public_checks_only_or_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium");
    let config = |public: &str| {
        format!(
            "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
             [api]\ntoken_env = \"WARDEN_TEST_TOKEN\"\nrequire_token_for_reads = true\n\
             [status_page]\npublic = [{public}]\n\
             [[check]]\nname = \"api\"\nplugin = \"hello\"\nschedule = \"@every 1s\"\n\
             [[check]]\nname = \"internal\"\nplugin = \"hello\"\nschedule = \"@every 1s\"\n"
        )
    };
    let env = [("WARDEN_TEST_TOKEN", "s3cret")];
    let agent = AgentProcess::start(&dir.path().join("a"), &config("\"api\""), &env);
    let page = dom(&profile, agent.port, "/");
    assert!(page.contains("Showing the public checks."), "{page}");
    let cards = chunks(&page, "<li class=\"check\"");
    assert_eq!(cards.len(), 1, "{page}");
    assert_eq!(attr(cards[0], "data-check"), Some("api"));
    assert!(!page.contains("internal"), "{page}");
    // A public check's page has no findings or outputs without a token;
    // a private one reads as absent.
    let api = dom(&profile, agent.port, "/checks/api");
    assert!(api.contains("Findings and outputs need a token."), "{api}");
    let internal = dom(&profile, agent.port, "/checks/internal");
    assert!(internal.contains("no check named"), "{internal}");
    // The JSON behind it: the same policy; a wrong token is refused.
    let data = agent.get("/v1/page/api").json();
    assert!(
        data["findings"].is_null() && data["public_only"] == true,
        "{data}"
    );
    let wrong = common::http(
        agent.port,
        "GET",
        "/v1/page",
        &[("authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let full = common::http(
        agent.port,
        "GET",
        "/v1/page",
        &[("authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(
        full.json()["checks"].as_array().unwrap().len(),
        2,
        "{}",
        full.body
    );
    assert_eq!(
        agent.get("/v1/checks").status,
        401,
        "the rest of the API is not opened"
    );
    drop(agent);

    // Nothing public: the page asks for the token, with a labelled field.
    let agent = AgentProcess::start(&dir.path().join("b"), &config(""), &env);
    let page = dom(&profile, agent.port, "/");
    assert!(
        page.contains("This agent needs a token to read its status."),
        "{page}"
    );
    assert!(
        page.contains("<label for=\"token\">API token</label>") && page.contains("id=\"token\""),
        "{page}"
    );
    assert_eq!(agent.get("/v1/page").status, 401);
    // The page's files are served to anyone, with a strict policy.
    let js = agent.get("/ui/app.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'")),
        "{:?}",
        js.headers
    );
    assert_eq!(agent.get("/ui/nope.js").status, 404);
}

/// Driven as a person would, through chromedriver: the token typed into
/// the form from the keyboard, a status change shown by the page's own
/// refresh (no reload, focus kept, announced), Enter on a focused link,
/// and nothing wider than a phone's screen.
#[test]
fn the_page_refreshes_in_place_and_works_from_the_keyboard() {
    use super::webdriver::{Browser, ENTER, TAB};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let receiver = common::notify::Receiver::start(&dir.path().join("svc"), common::free_port());
    let p = receiver.port;
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [api]\ntoken_env = \"WARDEN_TEST_TOKEN\"\nrequire_token_for_reads = true\n\
         [[check]]\nname = \"api\"\nplugin = \"hello\"\nschedule = \"@every 24h\"\n\
         failure_threshold = 2\n\
         config = {{ url = \"http://127.0.0.1:{p}/health/api\" }}\n\
         allow.hosts = [\"http://127.0.0.1:{p}\"]\n\
         [[check]]\nname = \"worker\"\nplugin = \"hello\"\nschedule = \"@every 24h\"\n"
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("WARDEN_TEST_TOKEN", "s3cret")]);
    let run = |check: &str| {
        let r = common::http(
            agent.port,
            "POST",
            &format!("/v1/checks/{check}/run"),
            &[("authorization", "Bearer s3cret")],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    run("api");
    run("worker");

    let b = Browser::start(&dir.path().join("chromium"), 1280, 900);
    b.goto(&format!("http://127.0.0.1:{}/", agent.port));
    b.wait_for(
        "the token form",
        "return !!document.getElementById('token-form')",
        Duration::from_secs(20),
    );
    // The first Tab reaches the skip link; more reach the token field.
    b.press(TAB);
    assert_eq!(
        b.eval("return document.activeElement.textContent"),
        "Skip to content"
    );
    for _ in 0..5 {
        if b.eval("return document.activeElement.id") == "token" {
            break;
        }
        b.press(TAB);
    }
    assert_eq!(b.eval("return document.activeElement.id"), "token");
    b.press(&format!("s3cret{ENTER}"));
    b.wait_for(
        "both checks after the token",
        "return document.querySelectorAll('li.check').length === 2",
        Duration::from_secs(20),
    );

    // `api` fails twice: hard critical. The page shows it by itself.
    b.eval(
        "window.stillTheSamePage = true; document.getElementById('link-api').focus(); return null",
    );
    std::fs::write(receiver.dir.join("health-api"), "500").unwrap();
    run("api");
    run("api");
    b.wait_for(
        "api shown critical by the page's refresh",
        "return document.querySelector('[data-check=\"api\"]').dataset.status === 'critical'",
        Duration::from_secs(30),
    );
    assert_eq!(
        b.eval("return window.stillTheSamePage === true"),
        true,
        "refreshed in place, not reloaded"
    );
    assert_eq!(
        b.eval("return document.activeElement.id"),
        "link-api",
        "the focus stays where it was"
    );
    let announced = b.eval("return document.getElementById('announce').textContent");
    assert!(
        announced
            .as_str()
            .unwrap_or("")
            .contains("api is now CRITICAL"),
        "{announced}"
    );
    assert!(
        b.eval("return document.title")
            .as_str()
            .unwrap_or("")
            .contains("1 critical"),
        "the title says it too"
    );

    // Enter on the focused link opens the check's page.
    b.press(ENTER);
    b.wait_for(
        "api's page",
        "return location.pathname === '/checks/api' && document.querySelectorAll('tr[data-run]').length === 3",
        Duration::from_secs(20),
    );

    // On a phone, nothing is wider than the screen.
    let narrow = Browser::start(&dir.path().join("chromium-phone"), 390, 844);
    narrow.goto(&format!("http://127.0.0.1:{}/", agent.port));
    narrow.eval("sessionStorage.setItem('warden-token', 's3cret'); return null");
    for path in ["/", "/checks/api"] {
        narrow.goto(&format!("http://127.0.0.1:{}{path}", agent.port));
        narrow.wait_for(
            "the page rendered",
            "return document.querySelectorAll('li.check').length > 0",
            Duration::from_secs(20),
        );
        let fits = narrow.eval(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth",
        );
        assert_eq!(fits, true, "{path} fits a 390 px screen");
    }
}
