//! The filetest harness: every file under `tests/filetests/` carries its own
//! expectations, in the spirit of Cranelift's filetests and MLIR's lit tests.
//!
//! A file starts with `// RUN: dlc compile [--emit ast]` (print the IR or AST and
//! match it), `// RUN: dlc opt --pass NAME…` (also `--NAME`, `--pipeline NAME`:
//! run those passes through the pass manager, verifying after each, and match
//! the IR they print) or `// RUN: dlc check` (expect exactly the annotated errors).
//! `// -----` separates independent cases; line numbers stay those of the file.
//!
//! Expectations:
//! - `// CHECK: text` — a later output line contains `text`;
//!   `// CHECK-NEXT: text` — the very next line does;
//!   `// CHECK-NOT: text` — no line before the next CHECK match does.
//! - `// OUT: line` — together, the exact output; `DLC_BLESS=1` rewrites them.
//! - In `.dl` files, `//~ ERROR text` on a line expects a diagnostic starting on
//!   that line whose message contains `text` (`//~^ ERROR` for the line above);
//!   every diagnostic must be expected.
//! - In `.mlir` files, `// expected-error {{text}}` expects the case to fail
//!   with an error containing `text`; `// expected-error@+1 {{text}}` also
//!   pins the parse error to the next line.

use dlc::{Error, Program, SourceKind};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug)]
enum Expect {
    Check(String),
    CheckNext(String),
    CheckNot(String),
}

struct Case {
    /// The case's text, padded with blank lines so line numbers match the file.
    text: String,
    first_line: usize,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("dl" | "mlir")) {
            out.push(p);
        }
    }
}

fn split_cases(text: &str) -> Vec<Case> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cases = Vec::new();
    let mut start = 0;
    for i in 0..=lines.len() {
        if i == lines.len() || lines[i].trim() == "// -----" {
            let mut t = String::new();
            for (j, l) in lines.iter().enumerate() {
                // Comment lines are blanked so that IR text parses; `.dl` keeps them (they are comments there too).
                let keep = j >= start && j < i && !l.trim_start().starts_with("//");
                let _ = writeln!(t, "{}", if keep { *l } else { "" });
            }
            cases.push(Case { text: t, first_line: start + 1 });
            start = i + 1;
        }
    }
    cases
}

fn directive<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let t = line.trim_start().strip_prefix("//")?.trim_start();
    t.strip_prefix(key).map(|r| r.strip_prefix(' ').unwrap_or(r))
}

/// `(line, text)` of each `//~ ERROR` annotation in `.dl` source.
fn dl_error_annotations(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(pos) = l.find("//~") {
            let rest = &l[pos + 3..];
            let up = rest.chars().take_while(|&c| c == '^').count();
            let msg = rest[up..].trim_start().strip_prefix("ERROR").map(str::trim).unwrap_or("");
            out.push((i + 1 - up, msg.to_string()));
        }
    }
    out
}

/// `(line offset, text)` of each `// expected-error` in `.mlir` source.
fn mlir_error_annotations(text: &str) -> Vec<(Option<usize>, String)> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(rest) = directive(l, "expected-error") {
            let (line, rest) = match rest.strip_prefix("@+") {
                Some(r) => {
                    let n: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
                    (Some(i + 1 + n.parse::<usize>().unwrap_or(0)), &r[n.len()..])
                }
                None => (None, rest),
            };
            let msg = rest.trim().trim_start_matches("{{").trim_end_matches("}}").to_string();
            out.push((line, msg));
        }
    }
    out
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// FileCheck-style matching: each CHECK searches forward from the end of the
/// previous match (the rest of the same line included); CHECK-NEXT must match
/// on the line after the previous match's line; CHECK-NOT must not occur between
/// the previous match and the next one (or the end).
fn match_checks(output: &str, checks: &[Expect]) -> Result<(), String> {
    let lines: Vec<&str> = output.lines().collect();
    let (mut line, mut col) = (0usize, 0usize);
    let mut matched_any = false;
    let mut pending_not: Vec<&str> = Vec::new();
    let region = |from: (usize, usize), to: (usize, usize)| -> String {
        let mut s = String::new();
        for i in from.0..=to.0.min(lines.len().saturating_sub(1)) {
            let l = lines.get(i).copied().unwrap_or("");
            let a = if i == from.0 { from.1.min(l.len()) } else { 0 };
            let b = if i == to.0 { to.1.min(l.len()) } else { l.len() };
            if a <= b {
                s.push_str(&l[a..b]);
            }
            s.push('\n');
        }
        s
    };
    for c in checks {
        match c {
            Expect::CheckNot(t) => pending_not.push(t),
            Expect::Check(t) => {
                let mut found = None;
                for (i, text) in lines.iter().enumerate().skip(line) {
                    let from = if i == line { col.min(text.len()) } else { 0 };
                    if let Some(p) = text[from..].find(t.as_str()) {
                        found = Some((i, from + p));
                        break;
                    }
                }
                let Some((i, p)) = found else { return Err(format!("CHECK: '{t}' not found after line {}", line + 1)) };
                let between = region((line, col), (i, p));
                if let Some(n) = pending_not.iter().find(|n| between.contains(**n)) {
                    return Err(format!("CHECK-NOT: '{n}' found before '{t}'"));
                }
                pending_not.clear();
                (line, col) = (i, p + t.len());
                matched_any = true;
            }
            Expect::CheckNext(t) => {
                if !matched_any {
                    return Err("CHECK-NEXT without a preceding CHECK".into());
                }
                let i = line + 1;
                let Some(p) = lines.get(i).and_then(|l| l.find(t.as_str())) else {
                    return Err(format!("CHECK-NEXT: '{t}' is not on line {} (found '{}')", i + 1, lines.get(i).unwrap_or(&"<end>")));
                };
                (line, col) = (i, p + t.len());
            }
        }
    }
    let rest = region((line, col), (lines.len(), 0));
    if let Some(n) = pending_not.iter().find(|n| rest.contains(**n)) {
        return Err(format!("CHECK-NOT: '{n}' found"));
    }
    Ok(())
}

/// Runs one file; returns its failures and, when blessing, the new file text.
fn run_file(path: &Path, bless: bool) -> (Vec<String>, Option<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let kind = SourceKind::of_path(path);
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let run = text.lines().next().and_then(|l| directive(l, "RUN:")).map(str::trim).unwrap_or("");
    let mut failures = Vec::new();
    let mut outputs = String::new();
    for case in split_cases(&text) {
        let case_lines: Vec<&str> = text.lines().skip(case.first_line - 1).take_while(|l| l.trim() != "// -----").collect();
        let case_src = case_lines.join("\n");
        let at = format!("{}:{}", path.display(), case.first_line);
        let result = Program::from_source(&name, &case.text, kind);
        match run {
            "dlc compile" | "dlc compile --emit ast" => {
                let out = match (&result, run.ends_with("ast")) {
                    (Ok(p), false) => dlc::ir::print::print_module(&p.module),
                    (Ok(p), true) => dlc::frontend::dump_ast(&p.compiled.as_ref().unwrap().ast),
                    (Err(e), _) => {
                        failures.push(format!("{at}: expected to compile, got:\n{}", e.render(false)));
                        continue;
                    }
                };
                check_output(&at, &case_lines, &out, &mut failures);
                outputs.push_str(&out);
            }
            opt if opt.split_whitespace().take(2).eq(["dlc", "opt"]) => {
                let out = match (result, opt_passes(opt)) {
                    (Ok(mut p), Ok(names)) => {
                        let dir = std::env::temp_dir().join(format!("dlc-filetests-{}", std::process::id()));
                        let options = dlc::passes::Options { verify_each: true, reproducer_dir: Some(dir), ..Default::default() };
                        let run = dlc::passes::PassManager::with_passes(options, &names).map_err(|e| e.to_string());
                        match run.and_then(|pm| pm.run(&mut p.module, &mut std::io::sink()).map_err(|e| e.to_string())) {
                            Ok(_) => dlc::ir::print::print_module(&p.module),
                            Err(e) => {
                                failures.push(format!("{at}: the passes failed:\n{e}"));
                                continue;
                            }
                        }
                    }
                    (Err(e), _) => {
                        failures.push(format!("{at}: expected to parse and verify, got:\n{}", e.render(false)));
                        continue;
                    }
                    (_, Err(e)) => {
                        failures.push(format!("{}: {e}", path.display()));
                        break;
                    }
                };
                check_output(&at, &case_lines, &out, &mut failures);
                outputs.push_str(&out);
            }
            "dlc check" => failures.extend(check_errors(&at, kind, &case.text, &case_src, case.first_line, result.err())),
            other => failures.push(format!("{}: unknown RUN line '{other}'", path.display())),
        }
    }
    // Precise output: the `// OUT:` lines, all cases together.
    let expected: Vec<&str> = text.lines().filter_map(|l| directive(l, "OUT:")).collect();
    let has_out = text.lines().any(|l| l.trim_start().starts_with("// OUT:"));
    let mut blessed = None;
    if has_out {
        let got: Vec<&str> = outputs.lines().collect();
        if got != expected && (run.starts_with("dlc compile") || run.starts_with("dlc opt")) {
            if bless {
                let mut t: String = text.lines().filter(|l| !l.trim_start().starts_with("// OUT:")).map(|l| format!("{l}\n")).collect();
                while t.ends_with("\n\n") {
                    t.pop();
                }
                t.push('\n');
                for l in &got {
                    let _ = writeln!(t, "// OUT: {l}");
                }
                blessed = Some(t);
            } else {
                let mut diff = String::new();
                for i in 0..got.len().max(expected.len()) {
                    let (g, e) = (got.get(i), expected.get(i));
                    if g != e {
                        let _ = writeln!(diff, "line {}:\n  - {}\n  + {}", i + 1, e.unwrap_or(&"<none>"), g.unwrap_or(&"<none>"));
                    }
                }
                failures.push(format!("{}: output differs from the // OUT: lines (DLC_BLESS=1 rewrites them):\n{diff}", path.display()));
            }
        }
    }
    (failures, blessed)
}

/// Matches the case's CHECK lines against its output.
fn check_output(at: &str, case_lines: &[&str], out: &str, failures: &mut Vec<String>) {
    let checks: Vec<Expect> = case_lines
        .iter()
        .filter_map(|l| {
            directive(l, "CHECK-NEXT:").map(|t| Expect::CheckNext(t.trim().into()))
                .or_else(|| directive(l, "CHECK-NOT:").map(|t| Expect::CheckNot(t.trim().into())))
                .or_else(|| directive(l, "CHECK:").map(|t| Expect::Check(t.trim().into())))
        })
        .collect();
    if let Err(e) = match_checks(out, &checks) {
        failures.push(format!("{at}: {e}\n--- output ---\n{out}"));
    }
}

/// The pass names of a `dlc opt` RUN line, pipelines expanded.
fn opt_passes(run: &str) -> Result<Vec<&'static str>, String> {
    let mut words = run.split_whitespace().skip(2);
    let mut names = Vec::new();
    while let Some(w) = words.next() {
        let e = |e: dlc::passes::registry::UnknownName| format!("RUN line: {e}");
        match w {
            "--pass" => names.push(dlc::passes::registry::lookup(words.next().unwrap_or("")).map_err(e)?.name),
            "--pipeline" => names.extend(dlc::passes::registry::pipeline(words.next().unwrap_or("")).map_err(e)?),
            flag => names.push(dlc::passes::registry::lookup(flag.trim_start_matches("--")).map_err(e)?.name),
        }
    }
    Ok(names)
}

fn check_errors(at: &str, kind: SourceKind, text: &str, case_src: &str, first_line: usize, err: Option<Error>) -> Vec<String> {
    let mut failures = Vec::new();
    match kind {
        SourceKind::Dl => {
            let want: Vec<(usize, String)> = dl_error_annotations(case_src).into_iter().map(|(l, m)| (l + first_line - 1, m)).collect();
            let got: Vec<(usize, String)> = match &err {
                Some(Error::Diagnostics(d)) => d.items.iter().map(|i| (line_of(text, i.span.start), i.message.clone())).collect(),
                Some(other) => return vec![format!("{at}: expected diagnostics, got: {}", other.render(false))],
                None => vec![],
            };
            if want.is_empty() {
                failures.push(format!("{at}: a `dlc check` case needs at least one //~ ERROR annotation"));
            }
            for (l, m) in &want {
                if !got.iter().any(|(gl, gm)| gl == l && gm.contains(m.as_str())) {
                    failures.push(format!("{at}: expected an error on line {l} containing '{m}'; got {got:?}"));
                }
            }
            for (gl, gm) in &got {
                if !want.iter().any(|(l, m)| l == gl && gm.contains(m.as_str())) {
                    failures.push(format!("{at}: unexpected error on line {gl}: {gm}"));
                }
            }
        }
        SourceKind::Mlir => {
            let want: Vec<(Option<usize>, String)> =
                mlir_error_annotations(case_src).into_iter().map(|(l, m)| (l.map(|l| l + first_line - 1), m)).collect();
            let Some(e) = err else {
                return vec![format!("{at}: expected an error, but the IR parsed and verified")];
            };
            let rendered = e.render(false);
            let line = match &e {
                Error::IrParse { error, .. } => Some(error.line as usize),
                _ => None,
            };
            if want.is_empty() {
                failures.push(format!("{at}: a `dlc check` case needs an expected-error annotation"));
            }
            for (l, m) in &want {
                if !rendered.contains(m.as_str()) || (l.is_some() && *l != line) {
                    failures.push(format!("{at}: expected an error{} containing '{m}', got: {rendered}", l.map(|l| format!(" on line {l}")).unwrap_or_default()));
                }
            }
        }
    }
    failures
}

#[test]
fn filetests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(!all.is_empty(), "no filetests found under {}", root.display());
    let bless = std::env::var_os("DLC_BLESS").is_some();
    let mut failures = Vec::new();
    for f in &all {
        let (fails, blessed) = run_file(f, bless);
        failures.extend(fails);
        if let Some(t) = blessed {
            std::fs::write(f, t).unwrap();
        }
    }
    println!("{} filetests", all.len());
    assert!(failures.is_empty(), "{} failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
}
