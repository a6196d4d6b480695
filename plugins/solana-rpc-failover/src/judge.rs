//! The judgement: reference tip, eligibility, the choice.
//!
//! - **Tip**: the highest processed slot among endpoints that answer,
//!   report healthy and are on the right chain, unless that endpoint leads
//!   the runner-up by more than `leader_gap` slots: then the runner-up sets
//!   it and the leader is distrusted (one endpoint lying about its slot
//!   must not make every other look behind). This needs at least three
//!   endpoints reporting a slot; with two, the higher one sets the tip.
//! - **Ineligible** when: cooling down after throttling; unreachable;
//!   wrong genesis hash (checked once per URL and remembered); unhealthy or
//!   behind (`getHealth` -32005); a required method unsupported
//!   (-32601/-32602) or failing; more than `max_slot_lag` behind the tip;
//!   slower than `max_latency`; more failed runs than `max_error_rate` in
//!   the last `error_window` runs; distrusted leader.
//! - **Choice**: the current endpoint stays while eligible (stickiness).
//!   A primary that has been eligible for `failback_runs` consecutive runs
//!   replaces a backup; another endpoint replaces the current one after
//!   being clearly better (`better_slots` less lag) for `better_runs`
//!   consecutive runs. Either waits for `min_switch_interval` since the
//!   last switch. When the current endpoint is ineligible the best eligible
//!   one takes over at once (primaries first, then weight, lag, latency).
//!   With none eligible the last choice stays published.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::probe::{Health, MethodResult, Probe};
use crate::{Config, Role, Settings};

/// What the check remembers between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// The published endpoint.
    pub current: Option<String>,
    /// When it was chosen (ms since the epoch).
    pub last_switch_ms: u64,
    /// Per endpoint.
    pub endpoints: BTreeMap<String, EndpointHistory>,
}

/// One endpoint's memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointHistory {
    /// The URL template whose genesis hash was checked.
    pub genesis_url: Option<String>,
    /// Whether that genesis hash was the expected one.
    pub genesis_ok: bool,
    /// Failed runs (true) in the window, oldest first.
    pub errors: VecDeque<bool>,
    /// Throttled until (ms since the epoch).
    pub cooldown_until_ms: u64,
    /// Consecutive eligible runs.
    pub eligible_streak: u32,
    /// Consecutive runs clearly better than the current endpoint.
    pub better_streak: u32,
}

/// One endpoint's verdict this run.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Endpoint name.
    pub name: String,
    /// Why it is ineligible (empty: eligible).
    pub reasons: Vec<String>,
    /// A short class per reason (finding rule).
    pub classes: Vec<String>,
    /// Slots behind the tip.
    pub lag: Option<u64>,
    /// Failed runs in the window.
    pub error_rate: f64,
}

/// The outcome of a judgement.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The reference tip.
    pub tip: Option<u64>,
    /// Per endpoint, in config order.
    pub verdicts: Vec<Verdict>,
    /// Eligible endpoints.
    pub eligible_count: usize,
    /// The endpoint to publish (the last good one when none is eligible).
    pub choice: Option<String>,
    /// The endpoint published before.
    pub previous: Option<String>,
    /// Whether the choice changed this run.
    pub switched: bool,
    /// Why this choice, in words.
    pub why: String,
}

/// Judges the probes and updates `h`.
pub fn judge(
    cfg: &Config,
    s: &Settings,
    probes: &[Probe],
    h: &mut History,
    now_ms: u64,
) -> Decision {
    // Remember genesis checks, errors and throttling.
    for (e, p) in cfg.endpoints.iter().zip(probes) {
        let eh = h.endpoints.entry(e.name.clone()).or_default();
        if let (Some(expected), Some(got)) = (&s.genesis, &p.genesis) {
            eh.genesis_url = Some(e.url.clone());
            eh.genesis_ok = got == expected;
        }
        if s.genesis.is_none() {
            eh.genesis_ok = true;
        }
        if let Some(wait) = p.throttled {
            eh.cooldown_until_ms = now_ms + wait.as_millis() as u64;
        }
        if p.cooling_until.is_none() && p.throttled.is_none() {
            eh.errors.push_back(!p.errors.is_empty() || p.unreachable());
            while eh.errors.len() > s.error_window {
                eh.errors.pop_front();
            }
        }
    }
    h.endpoints
        .retain(|name, _| cfg.endpoints.iter().any(|e| &e.name == name));

    // The reference tip.
    let trusted_chain = |e: &crate::Endpoint| {
        let eh = &h.endpoints[&e.name];
        s.genesis.is_none() || (eh.genesis_url.as_deref() == Some(e.url.as_str()) && eh.genesis_ok)
    };
    let mut slots: Vec<(u64, &str)> = cfg
        .endpoints
        .iter()
        .zip(probes)
        .filter(|(e, p)| p.health == Health::Ok && trusted_chain(e))
        .filter_map(|(e, p)| p.slot_processed.map(|sl| (sl, e.name.as_str())))
        .collect();
    slots.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut distrusted: Option<(&str, u64)> = None;
    let tip = match slots.as_slice() {
        [] => None,
        [(only, _)] => Some(*only),
        // With two endpoints there is no majority to say which one is
        // wrong: the higher slot sets the tip. With three or more, a leader
        // far ahead of the runner-up is distrusted.
        [(lead, name), (next, _), rest @ ..] => {
            if !rest.is_empty() && lead - next > s.leader_gap {
                distrusted = Some((name, lead - next));
                Some(*next)
            } else {
                Some(*lead)
            }
        }
    };

    // Eligibility.
    let mut verdicts = Vec::new();
    for (e, p) in cfg.endpoints.iter().zip(probes) {
        let eh = &h.endpoints[&e.name];
        let mut v = Verdict {
            name: e.name.clone(),
            reasons: Vec::new(),
            classes: Vec::new(),
            lag: None,
            error_rate: if eh.errors.is_empty() {
                0.0
            } else {
                eh.errors.iter().filter(|&&x| x).count() as f64 / eh.errors.len() as f64
            },
        };
        let mut no = |class: &str, reason: String| {
            v.classes.push(class.to_string());
            v.reasons.push(reason);
        };
        if let Some(until) = p.cooling_until {
            no(
                "cooldown",
                format!(
                    "throttled; cooling down for {} s more",
                    (until - now_ms).div_ceil(1000)
                ),
            );
        } else if let Some(wait) = p.throttled {
            no(
                "throttled",
                format!(
                    "throttled (HTTP 429 or rate limit); resting {} s",
                    wait.as_secs()
                ),
            );
        } else if p.unreachable() {
            no(
                "unreachable",
                format!(
                    "no answer: {}",
                    p.errors.first().cloned().unwrap_or_default()
                ),
            );
        } else {
            if s.genesis.is_some() && !trusted_chain(e) {
                no(
                    "wrong_genesis",
                    format!(
                        "genesis hash {} is not the expected one",
                        p.genesis.as_deref().unwrap_or("unknown")
                    ),
                );
            }
            match &p.health {
                Health::Ok => {}
                Health::Behind(n) => no("behind", format!("getHealth: {n} slots behind")),
                Health::Unhealthy(m) => no("unhealthy", format!("getHealth: {m}")),
                Health::Failed(m) => no("unhealthy", format!("getHealth failed: {m}")),
            }
            for m in &s.methods {
                match p.methods.get(m) {
                    Some(MethodResult::Ok) => {}
                    Some(MethodResult::Unsupported(why)) => {
                        no("unsupported_method", format!("{m} unsupported ({why})"))
                    }
                    Some(MethodResult::Failed(why)) => {
                        no("method_failed", format!("{m} failed: {why}"))
                    }
                    None => no("method_failed", format!("{m} not answered")),
                }
            }
            if let (Some(tip), Some(slot)) = (tip, p.slot_processed) {
                let lag = tip.saturating_sub(slot);
                v.lag = Some(lag);
                if lag > s.max_slot_lag {
                    no(
                        "lagging",
                        format!("{lag} slots behind the tip {tip} (max {})", s.max_slot_lag),
                    );
                }
            }
            if let Some((name, gap)) = distrusted
                && name == e.name
            {
                no(
                    "slot_ahead",
                    format!(
                        "slot {gap} ahead of every other endpoint (more than {}); not trusted",
                        s.leader_gap
                    ),
                );
            }
            if let Some(l) = p.latency
                && l > s.max_latency
            {
                no(
                    "slow",
                    format!(
                        "{} ms, over {} ms",
                        l.as_millis(),
                        s.max_latency.as_millis()
                    ),
                );
            }
            if v.error_rate > s.max_error_rate {
                no(
                    "error_rate",
                    format!(
                        "{:.0}% of the last {} runs failed (max {:.0}%)",
                        v.error_rate * 100.0,
                        eh.errors.len(),
                        s.max_error_rate * 100.0
                    ),
                );
            }
        }
        verdicts.push(v);
    }
    for (e, v) in cfg.endpoints.iter().zip(&verdicts) {
        let eh = h.endpoints.get_mut(&e.name).expect("entry");
        eh.eligible_streak = if v.reasons.is_empty() {
            eh.eligible_streak.saturating_add(1)
        } else {
            0
        };
    }

    // The choice.
    let eligible: Vec<usize> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| v.reasons.is_empty())
        .map(|(i, _)| i)
        .collect();
    let rank = |i: &usize| {
        let e = &cfg.endpoints[*i];
        let p = &probes[*i];
        (
            e.role != Role::Primary,
            std::cmp::Reverse((e.weight.unwrap_or(1.0) * 1000.0) as i64),
            verdicts[*i].lag.unwrap_or(u64::MAX),
            p.latency.unwrap_or_default(),
        )
    };
    let best = eligible.iter().copied().min_by_key(rank);
    let previous = h.current.clone();
    let current = previous
        .as_ref()
        .and_then(|c| cfg.endpoints.iter().position(|e| &e.name == c));
    let since_switch = now_ms.saturating_sub(h.last_switch_ms);
    let may_switch = since_switch >= s.min_switch_interval.as_millis() as u64;
    let (choice, why) = match (current, best) {
        (_, None) => (current, "no endpoint is eligible".to_string()),
        (None, Some(b)) => (Some(b), "first choice".to_string()),
        (Some(c), Some(b)) if !eligible.contains(&c) => (
            Some(b),
            format!("{} became ineligible", cfg.endpoints[c].name),
        ),
        (Some(c), Some(_)) => {
            let cur = &cfg.endpoints[c];
            // Failback: a primary eligible long enough replaces a backup.
            let failback = (cur.role == Role::Backup)
                .then(|| {
                    eligible
                        .iter()
                        .copied()
                        .filter(|&i| cfg.endpoints[i].role == Role::Primary)
                        .filter(|&i| {
                            h.endpoints[&cfg.endpoints[i].name].eligible_streak >= s.failback_runs
                        })
                        .min_by_key(rank)
                })
                .flatten();
            // Clearly better for long enough.
            let cur_lag = verdicts[c].lag.unwrap_or(0);
            let mut better = None;
            for &i in &eligible {
                let name = &cfg.endpoints[i].name;
                // Never from a primary to a backup for speed alone.
                let clearly = i != c
                    && !(cur.role == Role::Primary && cfg.endpoints[i].role == Role::Backup)
                    && verdicts[i]
                        .lag
                        .unwrap_or(u64::MAX)
                        .saturating_add(s.better_slots)
                        < cur_lag;
                let eh = h.endpoints.get_mut(name).expect("entry");
                eh.better_streak = if clearly { eh.better_streak + 1 } else { 0 };
                if clearly && eh.better_streak >= s.better_runs && better.is_none() {
                    better = Some(i);
                }
            }
            match (failback, better) {
                (Some(f), _) if may_switch => (
                    Some(f),
                    format!(
                        "primary {} healthy for {} runs: failing back",
                        cfg.endpoints[f].name, s.failback_runs
                    ),
                ),
                (None, Some(b)) if may_switch => (
                    Some(b),
                    format!(
                        "{} clearly ahead for {} runs",
                        cfg.endpoints[b].name, s.better_runs
                    ),
                ),
                _ => (Some(c), "current endpoint eligible".to_string()),
            }
        }
    };
    let choice_name = choice.map(|i| cfg.endpoints[i].name.clone());
    let switched = choice_name.is_some() && choice_name != previous;
    if switched {
        h.current = choice_name.clone();
        h.last_switch_ms = now_ms;
        for eh in h.endpoints.values_mut() {
            eh.better_streak = 0;
        }
    }
    Decision {
        tip,
        eligible_count: eligible.len(),
        verdicts,
        choice: choice_name,
        previous,
        switched,
        why,
    }
}
