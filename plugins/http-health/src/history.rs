//! The scrapes a metrics check keeps in its state: the samples of every
//! series its rules select, as far back as the rules reach (the longest
//! range plus offset), so `rate(m[5m])` or `avg_over_time(m[1h] offset
//! 10m)` read what earlier runs saw. Bounded in series
//! ([`MAX_SERIES`]) and by time; non-finite values are not kept (JSON has
//! no NaN or Inf).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::promql::{Labels, Samples, Selected, Selector};

/// The most series one check keeps.
pub const MAX_SERIES: usize = 2000;

/// One series and its samples, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// Labels, the name as `__name__`.
    #[serde(rename = "l")]
    pub labels: Labels,
    /// (unix ms, value).
    #[serde(rename = "s")]
    pub samples: Vec<(i64, f64)>,
}

/// Every kept series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    /// The series.
    #[serde(default)]
    pub series: Vec<Series>,
}

impl History {
    /// Adds one scrape taken at `now` (unix ms): `scrape` is every series
    /// read and its value. Samples at or after `now` (a clock set back, a
    /// replay) are dropped first so each series stays in time order; then
    /// samples older than `now - keep_ms` and series left empty go.
    /// Errors when more than [`MAX_SERIES`] series would be kept.
    pub fn record(
        &mut self,
        now: i64,
        keep_ms: i64,
        scrape: Vec<(Labels, f64)>,
    ) -> Result<(), String> {
        let mut index: BTreeMap<Labels, usize> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for s in &mut self.series {
            s.samples.retain(|(t, _)| *t < now);
        }
        let mut seen = BTreeSet::new();
        for (labels, v) in scrape {
            if !v.is_finite() || !seen.insert(labels.clone()) {
                continue;
            }
            match index.get(&labels) {
                Some(&i) => self.series[i].samples.push((now, v)),
                None => {
                    index.insert(labels.clone(), self.series.len());
                    self.series.push(Series {
                        labels,
                        samples: vec![(now, v)],
                    });
                }
            }
        }
        let oldest = now - keep_ms;
        for s in &mut self.series {
            s.samples.retain(|(t, _)| *t >= oldest);
        }
        self.series.retain(|s| !s.samples.is_empty());
        if self.series.len() > MAX_SERIES {
            return Err(format!(
                "the rules select {} series, over the limit of {MAX_SERIES}; narrow their \
                 selectors with labels",
                self.series.len()
            ));
        }
        Ok(())
    }
}

impl Samples for History {
    fn select(&self, sel: &Selector, start: i64, end: i64) -> Selected {
        self.series
            .iter()
            .filter(|s| {
                s.labels
                    .get("__name__")
                    .is_some_and(|n| sel.selects(n, &s.labels))
            })
            .map(|s| {
                let samples = s
                    .samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| *t >= start && *t <= end)
                    .collect::<Vec<_>>();
                (s.labels.clone(), samples)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(name: &str) -> Labels {
        [("__name__".to_string(), name.to_string())].into()
    }

    #[test]
    fn keeps_what_the_rules_reach() {
        let mut h = History::default();
        for i in 0..10 {
            h.record(i * 1000, 3000, vec![(l("a"), i as f64), (l("b"), f64::NAN)])
                .unwrap();
        }
        assert_eq!(h.series.len(), 1, "NaN is not kept");
        assert_eq!(h.series[0].samples.len(), 4, "{:?}", h.series[0].samples);
        // Back in time: later samples go.
        h.record(7000, 3000, vec![(l("a"), 70.0)]).unwrap();
        assert_eq!(h.series[0].samples.last(), Some(&(7000, 70.0)));
        assert!(h.series[0].samples.iter().all(|(t, _)| *t <= 7000));
        let many = (0..=MAX_SERIES)
            .map(|i| (l(&format!("m{i}")), 1.0))
            .collect();
        assert!(h.record(8000, 1000, many).unwrap_err().contains("limit"));
    }
}
