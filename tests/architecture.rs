//! Architecture test (issue 14): the import graph of the top-level modules of `src/` has no
//! cycle, every import points down (or sideways) in the layer table below, nothing under the
//! command layer imports it, and `unsafe` appears only in `src/sys.rs`.
//!
//! Run it, and see the module map: `cargo test --test architecture -- --nocapture`.
//!
//! Every `.rs` file under `src/` is lexed (comments and string, raw-string, byte-string and char
//! literals dropped, `#[cfg(test)]` items skipped) and each `crate::x…`, `super::…` and, in
//! `src/main.rs`, `cronwarden::x…` path is mapped to its top-level module: `src/x.rs` and
//! `src/x/**` are module `x`; `src/lib.rs` and `src/main.rs` are the roots, not nodes. The checks
//! are functions over a map `file path -> source`, so the self-tests below run on inline sources.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// The written dependency rule, lowest layer first: a module may import modules of its own
/// layer or a lower one, never a higher one. Every top-level module under `src/` must be here.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str])] = &[
    ("leaf",         &["exit", "sync", "files", "sys", "paths", "units", "diag", "tls", "journal", "text"]),
    ("core",         &["config", "schedule", "scheduler", "template", "record", "log", "import"]),
    ("process",      &["runner", "contain", "output", "policy"]),
    ("coordination", &["coord", "lock", "fleet", "control"]),
    ("alerts",       &["alert"]),
    ("run",          &["execute", "pipeline"]),
    ("daemon",       &["daemon", "metrics", "page"]),
    ("command",      &["cmd", "cli"]),
];

/// The only file allowed to contain `unsafe`.
const UNSAFE_FILE: &str = "src/sys.rs";
/// How the binary (`src/main.rs`) names the library.
const CRATE_NAME: &str = "cronwarden";

type Sources = BTreeMap<String, String>;
/// importer -> imported module -> the references that make the edge. An importer is a
/// top-level module, or a crate root by its file name (`src/main.rs`).
type Edges = BTreeMap<String, BTreeMap<String, Vec<Ref>>>;

/// A path naming a crate module: in `file` at `line`, `text` (as written) names module `to`.
#[derive(Clone, Debug)]
struct Ref {
    to: String,
    file: String,
    line: usize,
    text: String,
}

#[derive(Clone, Debug)]
struct Tok {
    text: String,
    line: usize,
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code tokens of `src` (identifiers, `::`, single punctuation characters), each with its
/// line; comments, whitespace and literals are dropped.
fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let start = i;
        i = literal_end(&c, i);
        if i == start && !c[i].is_whitespace() {
            let word = c[i..].iter().take_while(|&&ch| is_ident(ch)).count();
            i += word.max(1 + usize::from(c[i] == ':' && c.get(i + 1) == Some(&':')));
            let text = c[start..i].iter().collect();
            out.push(Tok { text, line });
        } else {
            i = i.max(start + 1);
            line += c[start..i].iter().filter(|&&ch| ch == '\n').count();
        }
    }
    out
}

/// If a comment or literal starts at `c[i]`, the index just past its end; otherwise `i`.
/// A `'` starts a char literal only as `'x'` or `'\…'`: `'a` and `'static` are lifetimes.
fn literal_end(c: &[char], i: usize) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len()),
        ('/', '*') => {
            let mut k = i + 2;
            while k < c.len() && (c[k], at(k + 1)) != ('*', '/') {
                let nested = (c[k], at(k + 1)) == ('/', '*');
                k = if nested { literal_end(c, k) } else { k + 1 };
            }
            (k + 2).min(c.len())
        }
        ('"', _) | ('\'', '\\') => quoted_end(c, i),
        ('\'', ch) if ch != '\'' && at(i + 2) == '\'' => i + 3,
        ('r' | 'b' | 'c', _) if i == 0 || !is_ident(c[i - 1]) => raw_end(c, i),
        _ => i,
    }
}

/// The end of the `"…"` or `'…'` literal at `c[i]`, backslash escapes honoured.
fn quoted_end(c: &[char], i: usize) -> usize {
    let mut k = i + 1;
    while k < c.len() && c[k] != c[i] {
        k += if c[k] == '\\' { 2 } else { 1 };
    }
    (k + 1).min(c.len())
}

/// The end of a raw string `r"…"`, `r#"…"#`, `br##"…"##`, `cr"…"` at `c[i]`; `i` if none is there.
fn raw_end(c: &[char], i: usize) -> usize {
    let r = i + usize::from(c[i] != 'r');
    if c.get(r) != Some(&'r') {
        return i;
    }
    let hashes = c[r + 1..].iter().take_while(|&&ch| ch == '#').count();
    if c.get(r + 1 + hashes) != Some(&'"') {
        return i; // a name, or a raw identifier such as `r#type`
    }
    let close: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
    let end = (r + 2 + hashes..c.len()).find(|&e| c[e..].starts_with(&close));
    end.map_or(c.len(), |e| e + close.len())
}

fn text(t: &[Tok], i: usize) -> &str {
    t.get(i).map_or("", |x| x.text.as_str())
}

/// +1 for an opening bracket, -1 for a closing one.
fn delta(s: &str) -> isize {
    isize::from(matches!(s, "(" | "[" | "{")) - isize::from(matches!(s, ")" | "]" | "}"))
}

/// The index just past the bracket group opened at `t[i]` (the end of `t` if unbalanced).
fn group_end(t: &[Tok], i: usize) -> usize {
    let mut depth = 0;
    for (k, tok) in t.iter().enumerate().skip(i) {
        depth += delta(&tok.text);
        if depth <= 0 {
            return k + 1;
        }
    }
    t.len()
}

/// The tokens without the `#[cfg(test)]` items: each is skipped (further attributes included)
/// through the matching `}` of its first `{…}` block or through its `;`, whichever comes first,
/// and never past a closing bracket it did not open.
fn without_test_code(t: &[Tok]) -> Vec<Tok> {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let (mut out, mut i) = (Vec::new(), 0);
    while i < t.len() {
        if !(0..CFG_TEST.len()).all(|k| text(t, i + k) == CFG_TEST[k]) {
            out.push(t[i].clone());
            i += 1;
            continue;
        }
        let mut depth = 0;
        i += CFG_TEST.len();
        while i < t.len() && depth + delta(text(t, i)) >= 0 {
            depth += delta(text(t, i));
            i += 1;
            if depth == 0 && matches!(text(t, i - 1), ";" | "}") {
                break;
            }
        }
    }
    out
}

/// The module path of a file: `src/cmd/run.rs` is `[cmd, run]`, `src/cmd/mod.rs` is `[cmd]`;
/// empty for the crate roots `src/lib.rs`, `src/main.rs` and `src/bin/**`.
fn module_path(path: &str) -> Vec<&str> {
    let rel = path.strip_prefix("src/").unwrap_or(path);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    if rel == "lib" || rel == "main" || rel.starts_with("bin/") {
        return Vec::new();
    }
    let mut segments: Vec<&str> = rel.split('/').collect();
    if segments.len() > 1 && segments.last() == Some(&"mod") {
        segments.pop();
    }
    segments
}

/// The path starting at `t[j]` as written: segments and `::`, then maybe a `{…}` group.
fn render(t: &[Tok], mut j: usize) -> String {
    let mut out = String::new();
    while text(t, j) == "*" || text(t, j).starts_with(is_ident) {
        out += text(t, j);
        if text(t, j + 1) != "::" {
            return out;
        }
        out += "::";
        j += 2;
    }
    if text(t, j) == "{" {
        for tok in &t[j..group_end(t, j)] {
            out += if tok.text == "," { ", " } else { &tok.text };
        }
    }
    out
}

/// The top-level modules named by the path or `{…}` group at `t[j]`, each with its text:
/// `{a, b::{c, d}}` names `a` and `b`; `self` and `*` name none.
fn targets(t: &[Tok], j: usize, prefix: &str) -> Vec<(String, String)> {
    match text(t, j) {
        "{" => {
            let (mut items, mut depth) = (vec![j + 1], 0);
            for k in j..group_end(t, j) {
                depth += delta(text(t, k));
                if depth == 1 && text(t, k) == "," {
                    items.push(k + 1);
                }
            }
            items.iter().flat_map(|&k| targets(t, k, prefix)).collect()
        }
        "self" => Vec::new(),
        s if s.starts_with(is_ident) => vec![(s.into(), format!("{prefix}{}", render(t, j)))],
        _ => Vec::new(),
    }
}

/// What the `super::…` path at `t[i]` names, seen from inside the module `scope`.
fn super_targets(t: &[Tok], i: usize, mut scope: Vec<&str>) -> Vec<(String, String)> {
    let mut j = i;
    while text(t, j) == "super" && text(t, j + 1) == "::" {
        if scope.pop().is_none() {
            return Vec::new(); // above the crate root: not valid Rust
        }
        j += 2;
    }
    match scope.first() {
        Some(top) => vec![(top.to_string(), render(t, i))],
        None => targets(t, j, &"super::".repeat((j - i) / 2)),
    }
}

/// Every path to a crate module in the non-test code of the file `path` (e.g. `src/cmd/run.rs`):
/// `crate::…`, `super::…` (from the file's module, or an inline `mod x { … }` in it) and, in the
/// binary, `cronwarden::…`. A reference may name an item of the crate root rather than a module.
fn references(path: &str, src: &str) -> Vec<Ref> {
    let base = module_path(path);
    let binary = base.is_empty() && path != "src/lib.rs";
    let t = without_test_code(&lex(src));
    let (mut refs, mut depth) = (Vec::new(), 0);
    let mut inline: Vec<(&str, isize)> = Vec::new(); // open `mod x {` blocks and their depth
    for i in 0..t.len() {
        depth += delta(text(&t, i));
        if text(&t, i) == "{" && i >= 2 && text(&t, i - 2) == "mod" {
            inline.push((text(&t, i - 1), depth));
        }
        inline.retain(|&(_, d)| d <= depth);
        if text(&t, i + 1) != "::" || (i > 0 && text(&t, i - 1) == "::") {
            continue;
        }
        let found = match text(&t, i) {
            "crate" => targets(&t, i + 2, "crate::"),
            CRATE_NAME if binary => targets(&t, i + 2, "cronwarden::"),
            "super" => {
                let scope = base.iter().copied().chain(inline.iter().map(|m| m.0));
                super_targets(&t, i, scope.collect())
            }
            _ => continue,
        };
        let line = t[i].line;
        refs.extend(found.into_iter().map(|(to, text)| Ref {
            to,
            file: path.into(),
            line,
            text,
        }));
    }
    refs
}

struct Graph {
    /// The top-level modules that have a file under `src/`.
    modules: BTreeSet<String>,
    edges: Edges,
}

fn graph(sources: &Sources) -> Graph {
    let top = |path: &str| module_path(path).first().map(|m| m.to_string());
    let modules: BTreeSet<String> = sources.keys().filter_map(|p| top(p)).collect();
    let mut edges = Edges::new();
    for (path, src) in sources {
        let from = top(path).unwrap_or(path.clone());
        for r in references(path, src) {
            if modules.contains(&r.to) && r.to != from {
                let to = edges.entry(from.clone()).or_default();
                to.entry(r.to.clone()).or_default().push(r);
            }
        }
    }
    Graph { modules, edges }
}

/// Breadth-first from `s`: each module reached, with the module it was first reached from
/// (`s` itself is in the map only if a cycle leads back to it).
fn bfs<'a>(e: &'a Edges, s: &'a str) -> BTreeMap<&'a str, &'a str> {
    let (mut parent, mut queue) = (BTreeMap::new(), VecDeque::from([s]));
    while let Some(n) = queue.pop_front() {
        for m in e.get(n).into_iter().flat_map(names) {
            if !parent.contains_key(m) {
                parent.insert(m, n);
                if m != s {
                    queue.push_back(m);
                }
            }
        }
    }
    parent
}

/// The shortest cycle, as `[a, b, c]` for `a -> b -> c -> a`.
fn shortest_cycle(e: &Edges) -> Option<Vec<&str>> {
    let cycle_through = |s| {
        let parent = bfs(e, s);
        let (mut path, mut v) = (vec![s], *parent.get(s)?);
        while v != s {
            path.push(v);
            v = parent.get(v).copied().unwrap_or(s);
        }
        path[1..].reverse();
        Some(path)
    };
    names(e).filter_map(cycle_through).min_by_key(Vec::len)
}

/// The references as indented `file:line: path` lines.
fn evidence(refs: &[Ref]) -> String {
    let line = |r: &Ref| format!("\n    {}:{}: {}", r.file, r.line, r.text);
    refs.iter().map(line).collect()
}

fn names<V>(map: &BTreeMap<String, V>) -> impl Iterator<Item = &str> {
    map.keys().map(String::as_str)
}

fn join<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    Vec::from_iter(items).join(", ")
}

/// Check a: no cycle among the top-level modules. The error names one shortest cycle and, for
/// each of its edges, the files and paths that make it.
fn check_cycle(g: &Graph) -> Result<(), String> {
    let e = &g.edges;
    let Some(cycle) = shortest_cycle(e) else {
        return Ok(());
    };
    let on_cycle = names(e).filter(|m| bfs(e, m).contains_key(m));
    let mut msg = format!(
        "the module graph of src/ has a cycle: {} -> {}\n(modules on some cycle: {})",
        cycle.join(" -> "),
        cycle[0],
        join(on_cycle)
    );
    for (k, &a) in cycle.iter().enumerate() {
        let b = cycle[(k + 1) % cycle.len()];
        let up = matches!((layer(a), layer(b)), (Some(x), Some(y)) if y > x);
        let note = up.then_some(" (points up the layer table: break this one)");
        let refs = e.get(a).and_then(|t| t.get(b)).map(|r| evidence(r));
        let (note, refs) = (note.unwrap_or_default(), refs.unwrap_or_default());
        let _ = write!(msg, "\n  {a} -> {b}{note}, made by:{refs}");
    }
    msg += "\nFix: remove one edge of the cycle (move what the lower module needs out of the \
            higher one, or pass it in), so that imports point one way; the layer table in \
            tests/architecture.rs says which way is down.";
    Err(msg)
}

/// Checks b and c: every module is in the layer table, no import points up, and nothing below
/// the command layer imports it. One paragraph per failure, naming files and paths.
fn check_layers(g: &Graph) -> Result<(), String> {
    let mut errs = Vec::new();
    for m in g.modules.iter().filter(|m| layer(m).is_none()) {
        errs.push(format!(
            "module {m} (src/{m}.rs or src/{m}/) is in no layer: add module {m} to the layer \
             table in tests/architecture.rs"
        ));
    }
    let command = LAYERS.len() - 1;
    for (a, targets) in &g.edges {
        for (b, refs) in targets {
            let (Some(la), Some(lb)) = (layer(a), layer(b)) else {
                continue;
            };
            let (a_layer, b_layer, refs) = (LAYERS[la].0, LAYERS[lb].0, evidence(refs));
            if lb == command && la != command {
                errs.push(format!(
                    "module {a} (layer {a_layer}) imports the command layer ({b}): only \
                     src/main.rs, src/lib.rs and the command layer ({}) may. Fix: move what {a} \
                     needs from {b} into {a} or a lower module. Made by:{refs}",
                    join(LAYERS[command].1.iter().copied())
                ));
            } else if lb > la {
                errs.push(format!(
                    "module {a} (layer {a_layer}) imports {b} (layer {b_layer}, higher): imports \
                     must point to the same layer or lower. Fix: move what {a} needs from {b} \
                     into layer {a_layer} or lower, or have {b} pass it in. Made by:{refs}"
                ));
            }
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} layer rule failure(s):\n{}",
        errs.len(),
        errs.join("\n")
    ))
}

/// Check d: no `unsafe` token (test code included) outside `src/sys.rs`; the error names each
/// `file:line`.
fn check_unsafe(sources: &Sources) -> Result<(), String> {
    let mut places = String::new();
    for (path, src) in sources.iter().filter(|(p, _)| p.as_str() != UNSAFE_FILE) {
        let found = lex(src).into_iter().filter(|t| t.text == "unsafe");
        found.for_each(|t| places += &format!("\n  {path}:{}", t.line));
    }
    if places.is_empty() {
        return Ok(());
    }
    Err(format!(
        "`unsafe` appears outside {UNSAFE_FILE}. Fix: move each unsafe call into a small safe \
         function in {UNSAFE_FILE} and call that. Found at:{places}"
    ))
}

/// Check e: the map of the modules, their layers and what each imports.
fn render_map(g: &Graph) -> String {
    let mut out = String::from("module graph of src/ (layer, module -> the modules it imports):");
    let mut row = |l: &str, m: &str| {
        let imports = g.edges.get(m).map_or(String::new(), |t| join(names(t)));
        let _ = write!(out, "\n  {l:<13} {m:<10} -> {imports}");
    };
    for &(l, ms) in LAYERS {
        ms.iter()
            .filter(|m| g.modules.contains(**m))
            .for_each(|m| row(l, m));
    }
    for m in g.modules.iter().filter(|m| layer(m).is_none()) {
        row("NO LAYER", m);
    }
    for m in names(&g.edges).filter(|m| !g.modules.contains(*m)) {
        row("(root)", m);
    }
    let table = LAYERS.iter().flat_map(|(_, ms)| ms.iter().copied());
    let missing = join(table.filter(|m| !g.modules.contains(*m)));
    out + "\n  in the table, no file yet: " + &missing
}

/// Every `.rs` file under `src/`, keyed by its path from the crate root (`src/cmd/run.rs`).
fn read_src() -> Sources {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut sources, mut dirs) = (Sources::new(), vec![root.join("src")]);
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a directory under src/") {
            let path = entry.expect("read a directory entry under src/").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file under src/");
                let rel = path.strip_prefix(root).expect("a path under src/");
                sources.insert(rel.to_string_lossy().replace('\\', "/"), text);
            }
        }
    }
    sources
}

#[test]
fn src_import_graph_has_no_cycle() {
    check_cycle(&graph(&read_src())).unwrap_or_else(|msg| panic!("{msg}"));
}

#[test]
fn src_imports_keep_the_layers_and_spare_the_command_layer() {
    check_layers(&graph(&read_src())).unwrap_or_else(|msg| panic!("{msg}"));
}

#[test]
fn src_unsafe_only_in_src_sys_rs() {
    check_unsafe(&read_src()).unwrap_or_else(|msg| panic!("{msg}"));
}

#[test]
fn src_module_graph_map() {
    println!("{}", render_map(&graph(&read_src())));
}

// Self-tests of the lexer, the extractor and the checks, on inline sources.

/// A synthetic tree from `"path: source"` entries.
fn tree(files: &[&str]) -> Sources {
    let split = |f: &&str| f.split_once(": ").map(|(p, s)| (p.into(), s.into()));
    files.iter().filter_map(split).collect()
}

fn targets_in(path: &str, src: &str) -> Vec<String> {
    references(path, src).into_iter().map(|r| r.to).collect()
}

/// The references of a file as `line: path` items.
fn paths_in(path: &str, src: &str) -> Vec<String> {
    let refs = references(path, src).into_iter();
    refs.map(|r| format!("{}: {}", r.line, r.text)).collect()
}

fn assert_has(hay: &str, needles: &[&str]) {
    for n in needles {
        assert!(hay.contains(n), "{n:?} is missing from:\n{hay}");
    }
}

#[test]
fn lexer_ignores_comments_strings_and_raw_strings() {
    let src = r####"
        // crate::a::X
        /// crate::a::X
        //! crate::a::X
        /* crate::a /* nested crate::a */ crate::a */
        let s = "crate::a \" crate::a";
        let r = r##"crate::a "# crate::a"##;
        let b = (b"crate::a", br#"crate::a"#, b'"', '"', c"crate::a");
        use crate::b::Y;
    "####;
    assert_eq!(paths_in("src/x.rs", src), ["9: crate::b::Y"]);
}

#[test]
fn lexer_lifetimes_are_not_char_literals() {
    let src = "fn f<'a>(x: &'a str) -> &'static str { crate::a::g(x) }\n\
               const C: [char; 4] = ['{', '\\'', '\\u{7b}', '}']; use crate::b::H;";
    assert_eq!(targets_in("src/x.rs", src), ["a", "b"]);
}

#[test]
fn extractor_skips_cfg_test_items() {
    let src = "#[cfg(test)]\nmod tests { use crate::x; fn f<'a>(s: &'a str) { let c = '}'; } }\n\
               #[cfg(test)] use crate::y::Z;\n\
               #[cfg(test)] #[allow(dead_code)] fn g(a: [u8; 2]) -> u8 { crate::y::h() }\n\
               use crate::z::W; fn k() { #[cfg(test)] crate::y::f(); crate::z::g(); }";
    assert_eq!(targets_in("src/x.rs", src), ["z", "z"]);
}

#[test]
fn extractor_reads_groups_and_re_exports() {
    let src = "use crate::{a, b::{c, d}, self};\npub(crate) use crate::e::F;\nuse std::{io, fmt};";
    let want = ["1: crate::a", "1: crate::b::{c, d}", "2: crate::e::F"];
    assert_eq!(paths_in("src/x.rs", src), want);
    assert_eq!(targets_in("src/x.rs", src), ["a", "b", "e"]);
}

#[test]
fn extractor_resolves_super_and_the_crate_name() {
    let cases = [
        "src/cmd/run.rs | use super::list::X; super::super::fleet::y(); | cmd fleet",
        "src/cmd/mod.rs | use super::{config, lock::L}; | config lock",
        "src/cmd/mod.rs | pub mod exit { use super::Failure; } super::x(); | cmd x",
        "src/alert.rs | use super::daemon; use self::x::Y; | daemon",
        "src/lib.rs | use super::x; | ",
        "src/main.rs | cronwarden::cmd::run(cronwarden::cli::Cli::parse()); | cmd cli",
        "src/fleet.rs | cronwarden::cmd::run(); | ",
    ];
    for case in cases {
        let part: Vec<&str> = case.split(" | ").collect();
        assert_eq!(targets_in(part[0], part[1]).join(" "), part[2], "{case}");
    }
}

#[test]
fn check_reports_a_cycle() {
    let g = graph(&tree(&[
        "src/config.rs: use crate::schedule::Cron;",
        "src/schedule.rs: \nfn f() { crate::config::load() }",
        "src/paths.rs: use crate::config::X;",
        "src/main.rs: use cronwarden::config;",
    ]));
    let msg = check_cycle(&g).expect_err("config <-> schedule is a cycle");
    let want = [
        "has a cycle: config -> schedule -> config\n",
        "config -> schedule, made by:\n    src/config.rs:1: crate::schedule::Cron",
        "schedule -> config, made by:\n    src/schedule.rs:2: crate::config::load",
    ];
    assert_has(&msg, &want);
    let acyclic = tree(&["src/config.rs: use crate::paths::P;", "src/paths.rs: "]);
    assert!(check_cycle(&graph(&acyclic)).is_ok());
}

#[test]
fn check_reports_layer_violations() {
    let g = graph(&tree(&[
        "src/config.rs: use crate::pipeline::Run;\nuse crate::paths::P;",
        "src/pipeline.rs: use crate::config; use crate::runner::R;",
        "src/runner.rs: fn f() -> u8 { crate::cmd::exit::OK }",
        "src/paths.rs: ",
        "src/cmd/mod.rs: use crate::{pipeline, cli};",
        "src/cli.rs: ",
        "src/zzz.rs: ",
        "src/main.rs: use cronwarden::cmd;",
    ]));
    let errs = check_layers(&g).expect_err("config -> pipeline points up");
    let want = [
        "add module zzz to the layer table in tests/architecture.rs",
        "module config (layer core) imports pipeline (layer run, higher)",
        "\n    src/config.rs:1: crate::pipeline::Run",
        "module runner (layer process) imports the command layer (cmd)",
        "\n    src/runner.rs:1: crate::cmd::exit::OK",
    ];
    assert_has(&errs, &want);
    assert_eq!(errs.matches("\nmodule ").count(), 3, "{errs}");
    let map = [
        "cmd        -> cli, pipeline",
        "main.rs -> cmd",
        "NO LAYER      zzz",
    ];
    assert_has(&render_map(&g), &map);
}

#[test]
fn check_finds_unsafe_outside_sys_rs() {
    let sys = "src/sys.rs: pub fn k() { unsafe { libc::kill(1, 0) }; }";
    let other =
        "src/a.rs: // unsafe\nlet s = \"unsafe\";\nunsafe { f() }\n#[cfg(test)] unsafe fn g() {}";
    let msg = check_unsafe(&tree(&[sys, other])).expect_err("src/a.rs has unsafe");
    assert!(msg.ends_with(":\n  src/a.rs:3\n  src/a.rs:4"), "{msg}");
}

/// The file modules (`alert::pass`) that the path `text`, written in the module `here`, names:
/// the longest prefix of the path (and of each item of a `{…}` group) that is a file module.
fn resolve(here: &[&str], text: &str, mods: &BTreeSet<String>) -> Vec<String> {
    let head = text.split('{').next().unwrap_or("");
    let mut segs: Vec<&str> = head.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = Vec::new();
    match segs.first().copied() {
        Some("crate") | Some(CRATE_NAME) => {
            segs.remove(0);
        }
        Some("super") => {
            base = here.to_vec();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        _ => return Vec::new(),
    }
    base.extend(segs.iter().filter(|s| s.starts_with(is_ident)));
    let mut candidates = vec![base.clone()];
    if let Some(group) = text.split_once('{').map(|(_, g)| g) {
        for item in group.split([',', '}']) {
            let first = item.trim().split("::").next().unwrap_or("");
            if first.starts_with(is_ident) && first != "self" {
                let mut c = base.clone();
                c.push(first);
                candidates.push(c);
            }
        }
    }
    let mut out: Vec<String> = candidates
        .into_iter()
        .filter_map(|c| {
            (1..=c.len())
                .rev()
                .map(|n| c[..n].join("::"))
                .find(|m| mods.contains(m))
        })
        .collect();
    out.dedup();
    out
}

/// The import graph between file modules (`alert::outbox -> alert::pass`), without the
/// edges from a module to its own parents (a child's `super::` names its parent's items).
fn file_graph(sources: &Sources) -> Edges {
    let mods: BTreeSet<String> = sources
        .keys()
        .map(|p| module_path(p).join("::"))
        .filter(|m| !m.is_empty())
        .collect();
    let mut edges = Edges::new();
    for (path, src) in sources {
        let here = module_path(path);
        let from = here.join("::");
        if from.is_empty() {
            continue;
        }
        for r in references(path, src) {
            for to in resolve(&here, &r.text, &mods) {
                if to == from || from.starts_with(&format!("{to}::")) {
                    continue;
                }
                let refs = edges.entry(from.clone()).or_default();
                refs.entry(to.clone())
                    .or_default()
                    .push(Ref { to, ..r.clone() });
            }
        }
    }
    edges
}

#[test]
fn src_file_modules_import_each_other_without_a_cycle() {
    let e = file_graph(&read_src());
    if let Some(cycle) = shortest_cycle(&e) {
        let mut msg = format!(
            "the file modules of src/ import each other in a cycle: {} -> {}",
            cycle.join(" -> "),
            cycle[0]
        );
        for (k, &a) in cycle.iter().enumerate() {
            let b = cycle[(k + 1) % cycle.len()];
            let refs = e.get(a).and_then(|t| t.get(b)).map(|r| evidence(r));
            let _ = write!(msg, "\n  {a} -> {b}, made by:{}", refs.unwrap_or_default());
        }
        panic!("{msg}\nFix: move what both need into one of them or a third module.");
    }
}

#[test]
fn sibling_modules_that_import_each_other_are_a_cycle() {
    let src = tree(&[
        "src/a/mod.rs: mod x; mod y;",
        "src/a/x.rs: use super::y::Y; pub struct X;",
        "src/a/y.rs: use crate::a::{x::X, self}; pub struct Y;",
    ]);
    let graph = file_graph(&src);
    let cycle = shortest_cycle(&graph).expect("a cycle");
    assert_eq!(cycle, ["a::x", "a::y"]);
    let fine = tree(&[
        "src/a/mod.rs: mod x; mod y;",
        "src/a/x.rs: use super::y::Y; use super::Shared;",
        "src/a/y.rs: pub struct Y;",
    ]);
    assert!(shortest_cycle(&file_graph(&fine)).is_none());
}
