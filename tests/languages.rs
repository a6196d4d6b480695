//! What a plugin author in any language meets, with the real binary: the
//! contract written out by `warden wit`, a plugin whose memory starts
//! large (as a Python or JS runtime's does) loading and being validated
//! with the memory its check gives, and an uncaught error reported by the
//! plugin's own last error line with the end of its stderr kept with the
//! run (in `warden check` and in the agent's store); and a plugin from
//! each template of `warden new` (Rust, Python, JavaScript) unit-tested
//! natively, built with its pinned tools, and run through `warden check`
//! against Python's `http.server` and in a running agent.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Every file under `dir`, as (path under `dir`, bytes), sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn wit_writes_the_contract_with_its_wasi_deps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("contract");
    let run = warden(dir.path(), &["wit", "--out", out.to_str().unwrap()], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("wrote 8 files to "), "{}", run.stdout);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    assert_eq!(files(&out), files(&repo), "the same bytes as wit/");
    assert!(out.join("deps/http/http.wit").is_file());
    // Again over it: replaced, not refused.
    let again = warden(dir.path(), &["wit", "--out", out.to_str().unwrap()], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    // A place it cannot write is named.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "x").unwrap();
    let bad = warden(
        dir.path(),
        &["wit", "--out", blocked.join("wit").to_str().unwrap()],
        &[],
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("file/wit"), "{}", bad.stderr);
}

#[test]
fn a_plugin_whose_memory_starts_large_loads_and_too_little_memory_is_named() {
    let state = tempfile::tempdir().unwrap();
    let roomy = wasm("roomy");
    let roomy = roomy.to_str().unwrap();
    // describe ran with the memory the plugin needs (it starts at 80 MiB,
    // over the 64 MiB default), so it loads; the default is refused by
    // name, with what to give instead.
    let run = warden(state.path(), &["check", roomy], &[]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "memory: 64 MiB is less than the 81.1 MiB the plugin's memory starts at; give the check memory = \"163MiB\" or more"
        ),
        "{}",
        run.stdout
    );
    let run = warden(state.path(), &["check", roomy, "--memory", "163MiB"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("OK: 80 MiB of room"),
        "{}",
        run.stdout
    );
    let inspect = warden(state.path(), &["inspect", roomy], &[]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);

    // `warden validate` says the same of a check in a config.
    let config = state.path().join("warden.toml");
    std::fs::create_dir_all(state.path().join("plugins")).unwrap();
    std::fs::copy(roomy, state.path().join("plugins/roomy.wasm")).unwrap();
    std::fs::write(
        &config,
        format!(
            "[agent]\nplugin_dir = \"{}\"\n[[check]]\nname = \"big\"\nplugin = \"roomy\"\n",
            state.path().join("plugins").display()
        ),
    )
    .unwrap();
    let v = warden(
        state.path(),
        &["validate", "-c", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(v.code, 1, "{}\n{}", v.stdout, v.stderr);
    let all = format!("{}{}", v.stdout, v.stderr);
    assert!(
        all.contains("check \"big\"") && all.contains("memory: 64 MiB is less than"),
        "{all}"
    );
}

#[test]
fn an_uncaught_error_reads_as_the_plugins_own_message_and_stderr_is_kept() {
    let state = tempfile::tempdir().unwrap();
    let hostile = wasm("hostile");
    let hostile = hostile.to_str().unwrap();
    // As componentize-py does: the traceback, then its runtime panics.
    let py = check_json(state.path(), hostile, r#"{"mode":"py-exception"}"#, &[]);
    assert_eq!(py.code, 3, "{}", py.stderr);
    let v = py.json();
    assert!(
        v["error"].as_str().unwrap_or("").starts_with(
            "plugin failed: ValueError: bad threshold (its runtime then panicked: Python function threw an unexpected exception (at "
        ),
        "{v}"
    );
    let stderr = v["stderr"].as_str().unwrap_or("");
    assert!(
        stderr.contains("Traceback (most recent call last):")
            && stderr.contains("raise ValueError(\"bad threshold\")"),
        "the traceback is kept: {v}"
    );
    // As a JS engine does: the error, then a trap.
    let js = check_json(state.path(), hostile, r#"{"mode":"js-error"}"#, &[]);
    assert_eq!(js.code, 3);
    let v = js.json();
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("plugin failed: Error: the service said 503 (then trapped: "),
        "{v}"
    );
    // A Rust panic reads as before; a quiet plugin keeps no stderr.
    let rust = check_json(state.path(), hostile, r#"{"mode":"panic"}"#, &[]);
    assert!(
        rust.json()["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("plugin panicked: hostile plugin panicked on purpose"),
        "{}",
        rust.stdout
    );
    let ok = check_json(state.path(), hostile, r#"{"mode":"ok"}"#, &[]);
    assert!(ok.json()["stderr"].is_null(), "{}", ok.stdout);

    // The agent keeps it with the run, across a restart.
    let dir = tempfile::tempdir().unwrap();
    let config = "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n\
                  [[check]]\nname = \"js\"\nplugin = \"hostile\"\nschedule = \"@every 1h\"\n\
                  config = { mode = \"js-error\" }\n";
    let agent = AgentProcess::start(dir.path(), config, &[]);
    let r = http(agent.port, "POST", "/v1/checks/js/run", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["stderr"].is_string(), "{}", r.body);
    let runs = |a: &AgentProcess| a.get("/v1/runs?check=js").json()["runs"].clone();
    agent.wait_until("the run stored", Duration::from_secs(60), |a| {
        !runs(a).as_array().unwrap().is_empty()
    });
    agent.kill9();
    let agent = AgentProcess::start(dir.path(), config, &[]);
    let run = runs(&agent)[0].clone();
    assert!(
        run["stderr"]
            .as_str()
            .unwrap_or("")
            .starts_with("Error: the service said 503\nStack:"),
        "{run}"
    );
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("plugin failed: Error: the service said 503"),
        "{run}"
    );
}

/// Runs `script args` in `dir` with `env`; its output, asserting success.
fn sh(dir: &Path, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(dir.join(script));
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the build script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} {args:?}: {text}");
    text
}

/// Writes a plugin from `lang`'s template into `dir/name`; its directory.
fn from_template(dir: &Path, lang: &str, name: &str) -> std::path::PathBuf {
    let plugin = dir.join(name);
    let made = warden(
        dir,
        &[
            "new",
            "--lang",
            lang,
            name,
            "--dir",
            plugin.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stdout.contains("./build.sh test && ./build.sh"),
        "{}",
        made.stdout
    );
    plugin
}

/// What every template's probe does through `warden check` against
/// Python's `http.server` at `base`: healthy, failing, not granted, bad
/// config.
fn the_probe_works(state: &Path, wasm: &str, base: &str) {
    let config = |path: &str| format!(r#"{{"url": "{base}{path}"}}"#);
    let granted = ["--allow-host", base];
    let ok = check_json(state, wasm, &config("/"), &granted);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    let v = ok.json();
    assert_eq!(v["status"], "ok", "{v}");
    assert!(
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "probe_http_status_code" && m["value"] == 200.0),
        "{v}"
    );
    let down = check_json(state, wasm, &config("/missing"), &granted);
    assert_eq!(down.code, 2, "{}", down.stdout);
    assert!(
        down.json()["summary"]
            .as_str()
            .unwrap()
            .contains("answered 404, expected 200"),
        "{}",
        down.stdout
    );
    // The error names the grant, whatever the language's HTTP client
    // says (the agent adds the refusal when it does not).
    let refused = check_json(state, wasm, &config("/"), &[]);
    assert_eq!(refused.code, 3);
    let error = refused.json()["error"].as_str().unwrap_or("").to_string();
    assert!(
        error.starts_with("plugin error: ")
            && error.contains(base)
            && error.contains("allow.hosts"),
        "{}",
        refused.stdout
    );
    let bad = warden(
        state,
        &["check", wasm, "--config", r#"{"url": "ftp://x"}"#],
        &[],
    );
    assert_eq!(bad.code, 3);
    assert!(
        bad.stdout
            .contains("url: required, an http:// or https:// URL"),
        "{}",
        bad.stdout
    );
}

/// `wasm` as plugin `name` in a running agent, probing `base`: loaded and
/// run on demand, ok; and run by an `[[action]]` (dry run) when another
/// check probing a missing page fails, which it is told (`host.action`).
fn runs_in_the_agent(home: &Path, wasm: &Path, name: &str, base: &str) {
    std::fs::create_dir_all(home.join("plugins")).unwrap();
    std::fs::copy(wasm, home.join(format!("plugins/{name}.wasm"))).unwrap();
    let agent = AgentProcess::start(
        home,
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
             [[check]]\nname = \"probe\"\nplugin = \"{name}\"\nschedule = \"@every 1h\"\n\
             config = {{ url = \"{base}/\" }}\nallow.hosts = [\"{base}\"]\n\
             [[check]]\nname = \"down\"\nplugin = \"{name}\"\nschedule = \"@every 1h\"\n\
             config = {{ url = \"{base}/missing\" }}\nallow.hosts = [\"{base}\"]\n\
             [[action]]\nname = \"recheck\"\nplugin = \"{name}\"\nmode = \"auto\"\ndry_run = true\n\
             on = {{ check = \"down\", state = \"every\" }}\n\
             config = {{ url = \"{base}/\" }}\nallow.hosts = [\"{base}\"]\n"
        ),
        &[],
    );
    agent.wait_until("the plugin loaded", Duration::from_secs(120), |a| {
        a.get(&format!("/v1/plugins/{name}")).json()["state"] == "loaded"
    });
    let r = http(agent.port, "POST", "/v1/checks/probe/run", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok", "{}", r.body);
    let runs = agent.check("probe")["runs"]["ok"].as_u64().unwrap_or(0);
    assert!(runs >= 1, "{}", agent.check("probe"));

    let r = http(agent.port, "POST", "/v1/checks/down/run", &[], b"");
    assert_eq!(r.json()["status"], "critical", "{}", r.body);
    let mut firing = serde_json::Value::Null;
    agent.wait_until("the action ran", Duration::from_secs(60), |a| {
        let firings = a.get("/v1/actions?action=recheck").json()["firings"].clone();
        match firings
            .as_array()
            .and_then(|f| f.iter().find(|f| f["result_summary"].is_string()))
        {
            Some(f) => {
                firing = f.clone();
                true
            }
            None => false,
        }
    });
    assert_eq!(firing["dry_run"], true, "{firing}");
    assert_eq!(firing["result_status"], "ok", "{firing}");
    assert_eq!(
        firing["result_summary"],
        format!("dry run of recheck: would probe {base}/"),
        "{firing}"
    );
}

/// A directory with `index.html`, served by Python's `http.server`.
fn site(dir: &Path) -> PythonHttpServer {
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "up\n").unwrap();
    PythonHttpServer::start(&site)
}

#[test]
fn a_python_plugin_from_the_template_is_unit_tested_built_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = from_template(dir.path(), "python", "pyprobe");
    // componentize-py and pytest, pinned, in one virtualenv for every run.
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../peers/python-plugins");
    let venv = venv.to_str().unwrap();
    let env = [("WARDEN_PY_VENV", venv), ("WARDEN", warden_bin())];
    let tests = sh(&plugin, "build.sh", &["test"], &env);
    assert!(tests.contains("6 passed"), "{tests}");
    let built = sh(&plugin, "build.sh", &[], &env);
    assert!(built.contains("pyprobe.wasm"), "{built}");
    let wasm = plugin.join("pyprobe.wasm");
    let server = site(dir.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    let state = dir.path().join("state");
    the_probe_works(&state, wasm.to_str().unwrap(), &base);

    // An uncaught exception reads as its own last line; the traceback is
    // kept with the run.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["app.py", "warden.py", "build.sh"] {
        std::fs::copy(plugin.join(f), broken.join(f)).unwrap();
    }
    let app = std::fs::read_to_string(broken.join("app.py")).unwrap();
    let app = app.replace(
        "        resp = ctx.http.get(url)\n",
        "        raise ValueError(f\"no route to {url}\")\n",
    );
    std::fs::write(broken.join("app.py"), app).unwrap();
    sh(&broken, "build.sh", &[], &env);
    let crash = check_json(
        &state,
        broken.join("pyprobe.wasm").to_str().unwrap(),
        &format!(r#"{{"url": "{base}/"}}"#),
        &["--allow-host", &base],
    );
    assert_eq!(crash.code, 3);
    let v = crash.json();
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("plugin failed: ValueError: no route to {base}/")),
        "{v}"
    );
    assert!(
        v["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("Traceback (most recent call last)"),
        "{v}"
    );

    // In the agent, beside the Rust plugins.
    runs_in_the_agent(&dir.path().join("agent"), &wasm, "pyprobe", &base);
}

#[test]
fn a_javascript_plugin_from_the_template_is_unit_tested_built_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = from_template(dir.path(), "js", "jsprobe");
    // componentize-js, pinned, in one tools directory for every run.
    let tools = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../peers/js-plugins");
    let tools = tools.to_str().unwrap();
    let env = [("WARDEN_JS_TOOLS", tools), ("WARDEN", warden_bin())];
    let tests = sh(&plugin, "build.sh", &["test"], &env);
    assert!(
        tests.contains("# pass 6") && tests.contains("# fail 0"),
        "{tests}"
    );
    let built = sh(&plugin, "build.sh", &[], &env);
    assert!(built.contains("jsprobe.wasm"), "{built}");
    let wasm = plugin.join("jsprobe.wasm");
    let server = site(dir.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    let state = dir.path().join("state");
    the_probe_works(&state, wasm.to_str().unwrap(), &base);

    // An uncaught exception reads as `Name: message`; its stack is kept
    // with the run.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in [
        "app.js",
        "warden.js",
        "component.js",
        "package.json",
        "build.sh",
    ] {
        std::fs::copy(plugin.join(f), broken.join(f)).unwrap();
    }
    let app = std::fs::read_to_string(broken.join("app.js")).unwrap();
    let app = app.replace(
        "    const resp = await ctx.http.get(url);\n",
        "    const resp = await ctx.http.get(url);\n    if (resp) throw new RangeError(`no route to ${url}`);\n",
    );
    std::fs::write(broken.join("app.js"), app).unwrap();
    sh(&broken, "build.sh", &[], &env);
    let crash = check_json(
        &state,
        broken.join("jsprobe.wasm").to_str().unwrap(),
        &format!(r#"{{"url": "{base}/"}}"#),
        &["--allow-host", &base],
    );
    assert_eq!(crash.code, 3);
    let v = crash.json();
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("plugin error: RangeError: no route to {base}/")),
        "{v}"
    );
    let stderr = v["stderr"].as_str().unwrap_or("");
    assert!(
        stderr.starts_with(&format!("RangeError: no route to {base}/\nStack:\n"))
            && stderr.contains("app.js"),
        "{v}"
    );

    runs_in_the_agent(&dir.path().join("agent"), &wasm, "jsprobe", &base);
}

#[test]
fn a_rust_plugin_from_the_template_is_built_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("rsprobe");
    let made = warden(
        dir.path(),
        &["new", "rsprobe", "--dir", plugin.to_str().unwrap()],
        &[],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    // Its own unit tests run in tests/cli.rs; here the component, built
    // offline with the dependencies the workspace fetched.
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--offline",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
            plugin.join("Cargo.toml").to_str().unwrap(),
        ])
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-template"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("rust-template/wasm32-wasip2/release/rsprobe.wasm");
    let server = site(dir.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    the_probe_works(&dir.path().join("state"), wasm.to_str().unwrap(), &base);
    runs_in_the_agent(&dir.path().join("agent"), &wasm, "rsprobe", &base);
}
