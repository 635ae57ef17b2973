//! The declared passes: one row per pass (name, summary, constructor), the
//! named pipelines, and name lookup with a "did you mean".
//!
//! This list is the only place a pass is registered: `dlc opt` generates its
//! `--<pass>` flags and `--pass NAME` values from it, the filetests resolve
//! their `// RUN: dlc opt …` lines through it, and the pipelines below name
//! its rows.

use crate::{Canonicalize, Cse, Dce, Egraph, Fold, FuseKernels, LowerKernels, Pass};
use std::fmt;

/// One declared pass.
pub struct PassInfo {
    /// The command-line name (`cse`); the pass's own [`Pass::name`].
    pub name: &'static str,
    /// One line on what it does; the pass's own [`Pass::summary`].
    pub summary: &'static str,
    /// Makes the pass with its default options.
    pub create: fn() -> Box<dyn Pass>,
}

/// Every pass `dlc opt` can run, in the order `--help` lists them.
pub const PASSES: &[PassInfo] = &[
    PassInfo {
        name: "canonicalize",
        summary: "apply exact algebraic identities (x*1 → x, neg(neg x) → x, reshape/transpose chains, no-op casts)",
        create: || Box::new(Canonicalize),
    },
    PassInfo {
        name: "cse",
        summary: "merge pure ops with the same kind, operands and attributes (common-subexpression elimination)",
        create: || Box::new(Cse),
    },
    PassInfo {
        name: "fold",
        summary: "evaluate small static ops whose operands are all constants into one dl.constant",
        create: || Box::new(Fold::default()),
    },
    PassInfo { name: "dce", summary: "remove ops whose results are never used", create: || Box::new(Dce) },
    PassInfo {
        name: "egraph",
        summary: "equality saturation (egg): exact algebra, transposes into matmul flags, stable log-softmax, scalar motion; cheapest form by bytes and FLOPs",
        create: || Box::new(Egraph),
    },
    PassInfo {
        name: "lower-kernels",
        summary: "lower dl ops to structured kernels (kernel.generic loop nests, kernel.matmul / kernel.conv2d contractions)",
        create: || Box::new(LowerKernels),
    },
    PassInfo {
        name: "fuse-kernels",
        summary: "fuse bias/ReLU epilogues into contractions and producer kernels into their consumers (one with an extra result where the producer's is needed elsewhere), by the bytes/FLOPs cost model",
        create: || Box::new(FuseKernels),
    },
];

/// The default pipeline: a straight list of stages, each a [`PASSES`] name.
/// Canonicalization first exposes duplicates to CSE; CSE before folding means
/// each constant expression is evaluated once; DCE last sweeps what the others
/// left unused.
pub const DEFAULT_PIPELINE: &[&str] = &["canonicalize", "cse", "fold", "dce"];

/// Named pipelines for `dlc opt --pipeline NAME`.
pub const PIPELINES: &[(&str, &[&str])] = &[("default", DEFAULT_PIPELINE), ("kernel", crate::kernel::KERNEL_PIPELINE)];

/// A pass or pipeline name that is not declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// `"pass"` or `"pipeline"`.
    pub what: &'static str,
    /// The name asked for.
    pub name: String,
    /// The closest declared name, if one is close.
    pub suggestion: Option<&'static str>,
    /// Every declared name, in declaration order.
    pub available: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}'", self.what, self.name)?;
        if let Some(s) = self.suggestion {
            write!(f, "; did you mean '{s}'?")?;
        }
        write!(f, " (available: {})", self.available.join(", "))
    }
}

impl std::error::Error for UnknownName {}

/// The declared pass named `name`.
pub fn lookup(name: &str) -> Result<&'static PassInfo, UnknownName> {
    PASSES.iter().find(|p| p.name == name).ok_or_else(|| unknown("pass", name, PASSES.iter().map(|p| p.name).collect()))
}

/// The stages of the pipeline named `name`.
pub fn pipeline(name: &str) -> Result<&'static [&'static str], UnknownName> {
    PIPELINES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, stages)| *stages)
        .ok_or_else(|| unknown("pipeline", name, PIPELINES.iter().map(|(n, _)| *n).collect()))
}

fn unknown(what: &'static str, name: &str, available: Vec<&'static str>) -> UnknownName {
    // Close means at most a third of the longer name edited (one typo in `cse`).
    let suggestion = available
        .iter()
        .map(|&n| (edit_distance(name, n), n))
        .filter(|&(d, n)| d * 3 <= name.len().max(n.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n);
    UnknownName { what, name: name.to_string(), suggestion, available }
}

/// Edit distance over chars, a swap of neighbours counting as one edit
/// (optimal string alignment), so `fodl` is one edit from `fold`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let mut best = (d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1])).min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_matches_the_pass_it_creates() {
        let mut seen = std::collections::HashSet::new();
        for p in PASSES {
            let pass = (p.create)();
            assert_eq!(pass.name(), p.name);
            assert_eq!(pass.summary(), p.summary, "{}: the declared summary differs from the pass's", p.name);
            assert!(seen.insert(p.name), "{} is declared twice", p.name);
            assert!(p.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{} is not a flag-friendly name", p.name);
        }
        for (name, stages) in PIPELINES {
            for s in *stages {
                assert!(lookup(s).is_ok(), "pipeline {name} names undeclared pass {s}");
            }
        }
    }

    #[test]
    fn unknown_names_suggest_the_closest_one() {
        let e = lookup("cs").err().unwrap();
        assert_eq!(e.suggestion, Some("cse"));
        assert_eq!(e.to_string(), "unknown pass 'cs'; did you mean 'cse'? (available: canonicalize, cse, fold, dce, egraph, lower-kernels, fuse-kernels)");
        assert_eq!(lookup("canonicalise").err().unwrap().suggestion, Some("canonicalize"));
        assert_eq!(lookup("fodl").err().unwrap().suggestion, Some("fold"));
        assert_eq!(lookup("inline").err().unwrap().suggestion, None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(pipeline("defualt").err().unwrap().suggestion, Some("default"));
        assert_eq!(pipeline("default").unwrap(), DEFAULT_PIPELINE);
    }
}
