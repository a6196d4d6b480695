//! `hostile`: a plugin that misbehaves in the way its config asks, so the
//! end-to-end tests can prove that each breach ends the run as `unknown`
//! with a distinct reason and leaves the agent undisturbed.

use warden_plugin_sdk::prelude::*;

/// What to do.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `ok`, `loop`, `sleep`, `alloc`, `panic`, `big-report`, `long-summary`,
    /// `http`, `read`, `list`, `write`, `env`, `flood`, `exit`, `error`,
    /// `state`, `outputs`, `findings`, `slow`, `forge`, `picky`, `huge-report`, `fields-bomb`,
    /// `py-exception` (a Python traceback on stderr, then its runtime's
    /// panic, as componentize-py does), `js-error` (a JS error on stderr,
    /// then a trap, as a JS engine does).
    pub mode: String,
    /// URL for `http`.
    #[serde(default)]
    pub url: Option<String>,
    /// Path for `read` and `list`.
    #[serde(default)]
    pub path: Option<String>,
    /// Variable for `env`.
    #[serde(default)]
    pub var: Option<String>,
    /// Value published by `outputs`.
    #[serde(default)]
    pub value: Option<String>,
    /// Milliseconds `slow` takes.
    #[serde(default)]
    pub ms: Option<u64>,
}

/// The plugin.
pub struct Hostile;

#[cfg(target_arch = "wasm32")]
fn fields_bomb(size: usize) -> Result<Report, Error> {
    use warden_plugin_sdk::guest::bindings::wasi::http::types::Fields;
    let value = vec![b'v'; size];
    let mut held = Vec::new();
    for i in 0..8000 {
        let f = Fields::new();
        f.append(&format!("x-{i}"), &value)
            .map_err(|e| Error::msg(format!("fields {i}: {e:?}")))?;
        held.push(f);
    }
    Ok(Report::ok(format!("held {} header sets", held.len())))
}

#[cfg(not(target_arch = "wasm32"))]
fn fields_bomb(_: usize) -> Result<Report, Error> {
    Err(Error::msg("fields-bomb runs only in the sandbox"))
}

impl Plugin for Hostile {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("hostile", env!("CARGO_PKG_VERSION"))
            .description("Misbehaves on request (test plugin).")
            .capability(Capability::Http)
            .capability(Capability::Filesystem)
            .capability(Capability::Environment)
            .capability(Capability::State)
    }

    /// `picky` refuses its config unless `HOSTILE_PICKY_OK` is visible,
    /// which it is only in a run that grants it: a plugin whose `validate`
    /// and `run` disagree, as a non-SDK component's may.
    fn validate(config: &Config) -> Result<(), String> {
        if config.mode == "picky" && std::env::var("HOSTILE_PICKY_OK").is_err() {
            return Err("picky: this config is refused".into());
        }
        Ok(())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        let c = &ctx.config;
        match c.mode.as_str() {
            "ok" => Ok(Report::ok("behaved")),
            "picky" => Ok(Report::ok("picky ran anyway")),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Report::ok("woke up"))
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "py-exception" => {
                eprintln!("starting the probe");
                eprintln!(
                    "Traceback (most recent call last):\n  File \"app.py\", line 9, in run\n    raise ValueError(\"bad threshold\")\nValueError: bad threshold"
                );
                panic!("Python function threw an unexpected exception")
            }
            "js-error" => {
                eprintln!(
                    "Error: the service said 503\nStack:\n  run@app.js:12:11\n  @app.js:40:3"
                );
                std::process::abort()
            }
            "big-report" => {
                let mut r = Report::ok("many findings");
                for i in 0..20_000 {
                    r = r.finding(Finding::new(
                        format!("fp{i}"),
                        "spam",
                        Severity::Low,
                        "spam",
                    ));
                }
                Ok(r)
            }
            "long-summary" => Ok(Report::ok("x".repeat(100_000))),
            // 80 findings of 1 MiB each: more than the host takes in one call.
            "huge-report" => {
                let message = "m".repeat(1 << 20);
                let mut r = Report::ok("huge");
                for i in 0..80 {
                    r = r.finding(Finding::new(
                        format!("fp{i}"),
                        "spam",
                        Severity::Low,
                        &message,
                    ));
                }
                Ok(r)
            }
            // 8,000 header sets of `ms` bytes (default 120 KiB) each, held.
            "fields-bomb" => fields_bomb(c.ms.unwrap_or(120 << 10) as usize),
            "http" => {
                let url = c.url.as_deref().ok_or_else(|| Error::msg("url missing"))?;
                let resp = ctx.http().get(url).send()?;
                Ok(Report::ok(format!(
                    "status {} body {} bytes",
                    resp.status,
                    resp.body.len()
                )))
            }
            "read" => {
                let path = c
                    .path
                    .as_deref()
                    .ok_or_else(|| Error::msg("path missing"))?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::msg(format!("read {path}: {e}")))?;
                Ok(Report::ok(format!(
                    "read {} bytes: {}",
                    text.len(),
                    text.trim()
                )))
            }
            "list" => {
                let path = c
                    .path
                    .as_deref()
                    .ok_or_else(|| Error::msg("path missing"))?;
                let mut names: Vec<String> = std::fs::read_dir(path)
                    .map_err(|e| Error::msg(format!("list {path}: {e}")))?
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect();
                names.sort();
                Ok(Report::ok(names.join(",")))
            }
            "write" => {
                let path = c
                    .path
                    .as_deref()
                    .ok_or_else(|| Error::msg("path missing"))?;
                std::fs::write(path, b"pwned")
                    .map_err(|e| Error::msg(format!("write {path}: {e}")))?;
                Ok(Report::ok("wrote"))
            }
            "env" => {
                let var = c.var.as_deref().unwrap_or("HOME");
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                Ok(Report::ok(format!(
                    "{var}={} visible=[{}]",
                    ctx.env(var).is_some(),
                    vars.join(",")
                )))
            }
            "flood" => {
                let line = "y".repeat(1023);
                for _ in 0..10_240 {
                    println!("{line}");
                }
                Ok(Report::ok("flooded"))
            }
            "exit" => std::process::exit(7),
            // Metrics that would break a Prometheus scrape, beside good ones.
            "bad-metrics" => Ok(Report::ok("bad metrics")
                .metric(Metric::new("hostile_good", 1.0).label("kind", "fine"))
                .metric(Metric::new("hostile_events_total", 3.0))
                .metric(Metric::new("hostile_not_a_number", f64::NAN))
                .metric(Metric::new("hostile_x-y", 1.0))
                .metric(Metric::new("hostile_x_y", 2.0))
                .metric(Metric::new("hostile_good", 9.0).label("kind", "fine"))
                .metric(Metric::new("hostile_label", 1.0).label("0x", "v"))
                .metric(Metric::new("hostile_label", 1.0).label("__name__", "v"))
                .metric(
                    Metric::new("hostile_label", 1.0)
                        .label("a", "1")
                        .label("a", "2"),
                )
                .metric(Metric::new("hostile_label", 1.0).label("check", "other"))
                .metric(Metric::new("warden_up", 0.0))
                .metric(Metric::new("__reserved", 1.0))
                .metric(Metric::new("9lives", 1.0))
                .metric(Metric::new("hostile_quoted", 1.0).label("v", "a\"b\\c\nd"))),
            // One report field or list over its cap, named by `value`.
            "wide" => {
                let long = "x".repeat(100_000);
                let r = Report::ok("wide");
                Ok(match c.value.as_deref().unwrap_or("") {
                    "label-name" => r.metric(Metric::new("m", 1.0).label(&long, "v")),
                    "labels" => r.metric(
                        (0..100_000)
                            .fold(Metric::new("m", 1.0), |m, i| m.label(format!("l{i}"), "v")),
                    ),
                    "unit" => r.metric(Metric::new("m", 1.0).unit(&long)),
                    "rule" => r.finding(Finding::new("fp", &long, Severity::Low, "m")),
                    "attribute-name" => {
                        r.finding(Finding::new("fp", "r", Severity::Low, "m").attribute(&long, "v"))
                    }
                    "attributes" => r.finding(
                        (0..100_000).fold(Finding::new("fp", "r", Severity::Low, "m"), |f, i| {
                            f.attribute(format!("a{i}"), "v")
                        }),
                    ),
                    "output-key" => r.output("K".repeat(100_000), "v"),
                    _ => r,
                })
            }
            // Text meant to fool whoever reads the log or the terminal.
            "forge" => {
                let forged = "2026-12-01T00:00:00.000000Z  INFO warden: FORGED agent line";
                warden_plugin_sdk::log::log(
                    warden_plugin_sdk::log::Level::Error,
                    &format!("done\n{forged}"),
                    &[("note\n", &format!("x\n{forged}"))],
                );
                println!("stdout\r\u{1b}[2K{forged}");
                Ok(Report::new(
                    Status::Critical,
                    "broken\r\u{1b}[2KOK: all good\nOK: all good",
                )
                .metric(Metric::new("m\u{1b}[31m", 1.0).label("l\n", "v\u{7}"))
                .finding(Finding::new(
                    "fp",
                    "rule\u{1b}]0;title\u{7}",
                    Severity::High,
                    "message\0\u{202e}cod.exe",
                )))
            }
            "error" => Err(Error::msg("refusing on purpose")),
            "state" => {
                let n: u64 = ctx.state().get("n")?.unwrap_or(0) + 1;
                ctx.state().set("n", &n)?;
                if n.is_multiple_of(2) {
                    panic!("even run {n} traps after writing state");
                }
                Ok(Report::ok(format!("n={n}")))
            }
            // Megabyte values until the host says no.
            "state-bomb" => {
                let big = "x".repeat(1 << 20);
                for i in 0..1000 {
                    ctx.state().set(&format!("bomb{i}"), &big)?;
                }
                Ok(Report::ok("the state took 1 GB"))
            }
            "outputs" => {
                let value = c.value.clone().unwrap_or_else(|| "one".into());
                Ok(Report::ok(format!("published {value}"))
                    .output("TEST_VALUE", value)
                    .output("TEST_QUOTED", "a b $c"))
            }
            "findings" => Ok(Report::new(Status::Critical, "2 secrets")
                .finding(
                    Finding::new("fp-aws", "aws-access-key", Severity::High, "AWS access key")
                        .location("/srv/app/config.py:3")
                        .attribute("file", "/srv/app/config.py")
                        .attribute("line", "3")
                        .attribute("column", "12")
                        .attribute("secret", "AKIA…")
                        .attribute("tags", "key,AWS"),
                )
                .finding(
                    Finding::new("fp-cors", "cors", Severity::Medium, "open CORS")
                        .location("https://api.example.com"),
                )),
            "slow" => {
                std::thread::sleep(std::time::Duration::from_millis(c.ms.unwrap_or(1000)));
                Ok(Report::ok("slept"))
            }
            other => Err(Error::msg(format!("unknown mode {other:?}"))),
        }
    }
}

warden_plugin_sdk::export!(Hostile);
