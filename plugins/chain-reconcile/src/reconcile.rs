//! Discrepancy classes, from the expected records and a snapshot.
//!
//! Balances: `missing_account` (critical), `wrong_owner` (warning; not the
//! SPL Token or Token-2022 program for a token account, not the System
//! program for SOL), `wrong_mint` (warning), `frozen` (warning),
//! `underfunded` (critical), `overfunded` (warning), each beyond the
//! tolerance. A SOL escrow's rent-exempt reserve is not spendable: the
//! funded amount is its lamports minus that reserve.

use serde_json::Value;

use crate::chain::{Account, SYSTEM_PROGRAM, Snapshot, TOKEN_2022_PROGRAM, TOKEN_PROGRAM};
use crate::source::{at, text_at};
use crate::{AmountUnit, Fields};

/// SOL or an SPL token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Lamports (9 decimals).
    Sol,
    /// A token of this mint.
    Spl(String),
}

/// An amount as the application gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// Base units.
    Raw(u128),
    /// A decimal string, in whole units of the mint.
    Decimal(String),
}

/// One expected record.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Shown in findings.
    pub id: String,
    /// Account address.
    pub account: String,
    /// What it holds.
    pub kind: Kind,
    /// How much (a fixed amount).
    pub amount: Amount,
    /// Or an unlock schedule: `(unlock time in unix seconds, amount)`; the
    /// escrow must hold what is not unlocked yet at chain time.
    pub milestones: Option<Vec<(i64, Amount)>>,
}

/// The form an amount was written in: a JSON number or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Number,
    Text,
}

/// An amount read under the configured unit; never a guess: a string or a
/// fraction without a unit, or a fraction in base units, is an error.
fn amount_of(
    v: Option<&Value>,
    unit: Option<AmountUnit>,
    what: &str,
) -> Result<(Amount, Form), String> {
    let (text, form) = match v {
        Some(Value::Number(n)) => (n.to_string(), Form::Number),
        Some(Value::String(s)) => (s.trim().to_string(), Form::Text),
        _ => return Err(format!("{what} missing or not a number")),
    };
    let decimal = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|b| *b == b'.').count() <= 1;
    if !decimal || text == "." {
        return Err(format!(
            "{what} {text:?} is not a non-negative decimal amount"
        ));
    }
    let integer = !text.contains('.');
    let amount = match unit {
        Some(AmountUnit::Whole) => Amount::Decimal(text),
        Some(AmountUnit::Base) if integer => Amount::Raw(
            text.parse()
                .map_err(|_| format!("{what} {text:?} is out of range"))?,
        ),
        Some(AmountUnit::Base) => {
            return Err(format!(
                "{what} {text:?} has a fraction, but fields.amount_unit is base (whole base units only)"
            ));
        }
        None if integer && form == Form::Number => Amount::Raw(
            text.parse()
                .map_err(|_| format!("{what} {text:?} is out of range"))?,
        ),
        None => {
            return Err(format!(
                "{what} is {}; is that base units or whole? set fields.amount_unit to \"base\" or \"whole\"",
                if form == Form::Text {
                    format!("the string {text:?}")
                } else {
                    format!("the fraction {text}")
                }
            ));
        }
    };
    Ok((amount, form))
}

/// Unix seconds from a number or a string of digits.
pub fn unix_seconds(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// Records → expectations; errors name the record (index and id) and
/// field. Amounts written as numbers in some records and as strings in
/// others are refused: one source writes them one way.
pub fn expected(records: &[Value], f: &Fields) -> Result<Vec<Expected>, String> {
    let mut first_form: Option<(Form, String)> = None;
    let mut check_form = |form: Form, who: &str| -> Result<(), String> {
        match &first_form {
            None => {
                first_form = Some((form, who.to_string()));
                Ok(())
            }
            Some((f0, who0)) if *f0 != form => Err(format!(
                "{who}: amount written as {}, but {who0}'s as {}; mixed forms are refused",
                if form == Form::Text {
                    "a string"
                } else {
                    "a number"
                },
                if *f0 == Form::Text {
                    "a string"
                } else {
                    "a number"
                },
            )),
            Some(_) => Ok(()),
        }
    };
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |path: &str| at(r, path).filter(|v| !v.is_null());
            let text = |path: &str, name: &str| -> Result<String, String> {
                text_at(r, path).ok_or_else(|| {
                    format!("record {i}: fields.{name} ({path:?}) missing or not a string")
                })
            };
            let account = text(&f.account, "account")?;
            let mint = f
                .mint
                .as_deref()
                .and_then(&field)
                .and_then(Value::as_str)
                .map(String::from);
            let kind = match f
                .kind
                .as_deref()
                .map(|p| text(p, "kind"))
                .transpose()?
                .as_deref()
            {
                Some("sol") => Kind::Sol,
                Some("spl") => Kind::Spl(
                    mint.clone()
                        .ok_or(format!("record {i}: spl without fields.mint"))?,
                ),
                Some(other) => {
                    return Err(format!(
                        "record {i}: fields.kind is {other:?}, not sol or spl"
                    ));
                }
                None => match mint {
                    Some(m) => Kind::Spl(m),
                    None => Kind::Sol,
                },
            };
            let id =
                f.id.as_deref()
                    .map(|p| text(p, "id"))
                    .transpose()?
                    .unwrap_or_else(|| account.clone());
            let who = format!("record {i} ({id})");
            let milestones = match f.milestones.as_deref().and_then(&field) {
                None => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(j, m)| {
                            let unlock = unix_seconds(at(
                                m,
                                f.milestone_unlock.as_deref().unwrap_or("unlock_at"),
                            ))
                            .ok_or(format!("{who}: milestone {j}: no unlock time"))?;
                            let (amount, form) = amount_of(
                                at(m, f.milestone_amount.as_deref().unwrap_or("amount")),
                                f.amount_unit,
                                &format!("{who}: milestone {j}: amount"),
                            )?;
                            check_form(form, &who)?;
                            Ok((unlock, amount))
                        })
                        .collect::<Result<Vec<_>, String>>()?,
                ),
                Some(_) => return Err(format!("record {i}: fields.milestones is not an array")),
            };
            let amount = if milestones.is_some() {
                Amount::Raw(0)
            } else {
                let (amount, form) = amount_of(
                    field(&f.amount),
                    f.amount_unit,
                    &format!("{who}: fields.amount ({:?})", f.amount),
                )?;
                check_form(form, &who)?;
                amount
            };
            Ok(Expected {
                id,
                account,
                kind,
                amount,
                milestones,
            })
        })
        .collect()
}

/// A discrepancy class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No such account.
    MissingAccount,
    /// Owned by the wrong program.
    WrongOwner,
    /// A token account of another mint.
    WrongMint,
    /// Frozen token account.
    Frozen,
    /// Less than expected.
    Underfunded,
    /// More than expected.
    Overfunded,
    /// A release lock without a transaction signature, older than allowed.
    StaleLock,
    /// A release lock's transaction failed.
    LockTxFailed,
    /// A release lock's transaction is unknown to the chain.
    LockTxNotFound,
    /// An admin event's transaction is unknown to the chain.
    AdminTxNotFound,
    /// An admin event's transaction failed.
    AdminTxFailed,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 11] = [
        Class::MissingAccount,
        Class::WrongOwner,
        Class::WrongMint,
        Class::Frozen,
        Class::Underfunded,
        Class::Overfunded,
        Class::StaleLock,
        Class::LockTxFailed,
        Class::LockTxNotFound,
        Class::AdminTxNotFound,
        Class::AdminTxFailed,
    ];

    /// Its name (finding rule, metric label).
    pub fn name(self) -> &'static str {
        match self {
            Class::MissingAccount => "missing_account",
            Class::WrongOwner => "wrong_owner",
            Class::WrongMint => "wrong_mint",
            Class::Frozen => "frozen",
            Class::Underfunded => "underfunded",
            Class::Overfunded => "overfunded",
            Class::StaleLock => "stale_lock",
            Class::LockTxFailed => "lock_tx_failed",
            Class::LockTxNotFound => "lock_tx_not_found",
            Class::AdminTxNotFound => "admin_tx_not_found",
            Class::AdminTxFailed => "admin_tx_failed",
        }
    }

    /// Whether it makes the check critical.
    pub fn critical(self) -> bool {
        matches!(
            self,
            Class::MissingAccount | Class::Underfunded | Class::LockTxFailed | Class::AdminTxFailed
        )
    }
}

/// One discrepancy.
#[derive(Debug, Clone, PartialEq)]
pub struct Discrepancy {
    /// Record id.
    pub id: String,
    /// Account.
    pub account: String,
    /// Class.
    pub class: Class,
    /// Details with the numbers.
    pub detail: String,
    /// Expected base units.
    pub expected: Option<u128>,
    /// Actual base units.
    pub actual: Option<u128>,
}

/// A decimal string in base units with `decimals`; exact or an error.
pub fn to_base_units(s: &str, decimals: u32) -> Result<u128, String> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > decimals as usize {
        return Err(format!("{s} has more than {decimals} decimals"));
    }
    let digits = format!("{whole}{frac:0<width$}", width = decimals as usize);
    digits
        .parse()
        .map_err(|_| format!("{s:?} is not a decimal amount"))
}

fn units(a: &Amount, decimals: u32) -> Result<u128, String> {
    match a {
        Amount::Raw(n) => Ok(*n),
        Amount::Decimal(s) => to_base_units(s, decimals),
    }
}

fn expected_units(e: &Expected, decimals: u32, chain_time: i64) -> Result<u128, String> {
    match &e.milestones {
        None => units(&e.amount, decimals),
        Some(ms) => ms
            .iter()
            .filter(|(unlock, _)| *unlock > chain_time)
            .map(|(_, a)| units(a, decimals))
            .sum(),
    }
}

/// The (funded) balance of an account for this expectation.
fn actual_units(e: &Expected, a: &Account, snap: &Snapshot) -> Option<(u128, u32)> {
    match &e.kind {
        Kind::Sol => {
            let reserve = snap.rent.get(&a.space).copied().unwrap_or(0);
            Some((u128::from(a.lamports.saturating_sub(reserve)), 9))
        }
        Kind::Spl(_) => a.token.as_ref().map(|t| (t.amount, t.decimals)),
    }
}

/// Every discrepancy, in record order.
pub fn reconcile(
    expected: &[Expected],
    snap: &Snapshot,
    tolerance: u64,
    chain_time: i64,
) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    for e in expected {
        let d = |class: Class, detail: String, exp: Option<u128>, act: Option<u128>| Discrepancy {
            id: e.id.clone(),
            account: e.account.clone(),
            class,
            detail,
            expected: exp,
            actual: act,
        };
        let Some(Some(a)) = snap.accounts.get(&e.account) else {
            out.push(d(
                Class::MissingAccount,
                "no such account at the snapshot slot".into(),
                None,
                None,
            ));
            continue;
        };
        match &e.kind {
            Kind::Sol if a.owner != SYSTEM_PROGRAM => {
                out.push(d(
                    Class::WrongOwner,
                    format!("owned by {}, not the System program", a.owner),
                    None,
                    None,
                ));
                continue;
            }
            Kind::Spl(mint) => {
                if a.owner != TOKEN_PROGRAM && a.owner != TOKEN_2022_PROGRAM {
                    out.push(d(
                        Class::WrongOwner,
                        format!("owned by {}, not SPL Token or Token-2022", a.owner),
                        None,
                        None,
                    ));
                    continue;
                }
                let Some(t) = &a.token else {
                    out.push(d(
                        Class::WrongOwner,
                        "not a token account".into(),
                        None,
                        None,
                    ));
                    continue;
                };
                if &t.mint != mint {
                    out.push(d(
                        Class::WrongMint,
                        format!("mint {} instead of {mint}", t.mint),
                        None,
                        None,
                    ));
                    continue;
                }
                if t.frozen {
                    out.push(d(
                        Class::Frozen,
                        "the token account is frozen".into(),
                        None,
                        None,
                    ));
                }
            }
            Kind::Sol => {}
        }
        let Some((actual, decimals)) = actual_units(e, a, snap) else {
            continue;
        };
        let exp = match expected_units(e, decimals, chain_time) {
            Ok(x) => x,
            Err(why) => {
                out.push(d(
                    Class::Underfunded,
                    format!("expected amount unreadable: {why}"),
                    None,
                    Some(actual),
                ));
                continue;
            }
        };
        let tol = u128::from(tolerance);
        if actual + tol < exp {
            out.push(d(
                Class::Underfunded,
                format!("{actual} < expected {exp} (short by {})", exp - actual),
                Some(exp),
                Some(actual),
            ));
        } else if actual > exp + tol {
            out.push(d(
                Class::Overfunded,
                format!("{actual} > expected {exp} (over by {})", actual - exp),
                Some(exp),
                Some(actual),
            ));
        }
    }
    out
}

/// Expected and actual totals in base units (records whose amounts are
/// readable).
pub fn totals(expected: &[Expected], snap: &Snapshot, chain_time: i64) -> (u128, u128) {
    let mut e_total = 0;
    let mut a_total = 0;
    for e in expected {
        if let Some(Some(a)) = snap.accounts.get(&e.account)
            && let Some((act, dec)) = actual_units(e, a, snap)
        {
            a_total += act;
            e_total += expected_units(e, dec, chain_time).unwrap_or(0);
        }
    }
    (e_total, a_total)
}

/// A release-lock row.
#[derive(Debug, Clone)]
pub struct Lock {
    /// Id.
    pub id: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// Transaction signature, once released.
    pub signature: Option<String>,
}

/// An admin event with a transaction.
#[derive(Debug, Clone)]
pub struct AdminEvent {
    /// Id.
    pub id: String,
    /// Transaction signature.
    pub signature: String,
}

/// Lock and admin-event discrepancies, given signature statuses and the
/// chain time.
pub fn events(
    locks: &[Lock],
    admin: &[AdminEvent],
    statuses: &std::collections::BTreeMap<String, crate::chain::TxStatus>,
    chain_time: i64,
    stale_after_s: i64,
) -> Vec<Discrepancy> {
    use crate::chain::TxStatus;
    let mut out = Vec::new();
    let d = |key: String, id: &str, class: Class, detail: String| Discrepancy {
        id: id.to_string(),
        account: key,
        class,
        detail,
        expected: None,
        actual: None,
    };
    for l in locks {
        let key = format!("lock:{}", l.id);
        match &l.signature {
            None => {
                let age = chain_time - l.created_at;
                if age > stale_after_s {
                    out.push(d(
                        key,
                        &l.id,
                        Class::StaleLock,
                        format!("no transaction after {age} s (max {stale_after_s} s): clear it"),
                    ));
                }
            }
            Some(sig) => match statuses.get(sig) {
                Some(TxStatus::Failed(e)) => out.push(d(
                    key,
                    &l.id,
                    Class::LockTxFailed,
                    format!("transaction {sig} failed: {e}"),
                )),
                Some(TxStatus::NotFound) | None => out.push(d(
                    key,
                    &l.id,
                    Class::LockTxNotFound,
                    format!("transaction {sig} not found"),
                )),
                Some(TxStatus::Ok) => {}
            },
        }
    }
    for a in admin {
        let key = format!("admin:{}", a.id);
        match statuses.get(&a.signature) {
            Some(TxStatus::Failed(e)) => out.push(d(
                key,
                &a.id,
                Class::AdminTxFailed,
                format!("transaction {} failed: {e}", a.signature),
            )),
            Some(TxStatus::NotFound) | None => out.push(d(
                key,
                &a.id,
                Class::AdminTxNotFound,
                format!("transaction {} not found", a.signature),
            )),
            Some(TxStatus::Ok) => {}
        }
    }
    out
}
