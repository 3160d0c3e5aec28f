use super::*;
use crate::scim::ScimType;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch script directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(files: &[(&str, &str)]) -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "scimgate-mapping-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        let dir = Dir(path);
        for (name, text) in files {
            dir.write(name, text);
        }
        dir
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads one script named `t` with the given source.
/// A set whose calls have a minute of wall time: these tests are about the other limits
/// (and run in parallel on a loaded machine); the time budget has its own test.
fn load(src: &str) -> (Dir, ScriptSet) {
    let dir = Dir::new(&[("t.rhai", src)]);
    let set = ScriptSet::load(&dir.0, Lookups::new())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .with_time_budget(std::time::Duration::from_secs(60));
    (dir, set)
}

fn load_err(src: &str) -> Vec<MappingError> {
    let dir = Dir::new(&[("t.rhai", src)]);
    ScriptSet::load(&dir.0, Lookups::new()).unwrap_err()
}

/// Calls `t.f(args…)`.
fn run(set: &ScriptSet, args: Vec<Value>) -> Result<Value, MappingError> {
    set.call("t", "f", args)
}

/// Runs a one-expression function body and returns its JSON result.
fn eval(body: &str) -> Value {
    let (_d, set) = load(&format!("fn f() {{\n{body}\n}}"));
    run(&set, vec![]).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn eval_err(body: &str) -> MappingError {
    let (_d, set) = load(&format!("fn f() {{\n{body}\n}}"));
    run(&set, vec![]).unwrap_err()
}

// ---------------------------------------------------------------- loading and errors

#[test]
fn load_reports_every_compile_error_with_file_and_line() {
    let dir = Dir::new(&[
        ("a_ok.rhai", "fn f(x) { x }"),
        ("b_bad.rhai", "fn f(x) {\n  let y = ;\n}"),
        ("c_bad.rhai", "fn ok() { 1 }\n\n\nfn g( { }"),
        ("notes.txt", "not a script"),
    ]);
    let errs = ScriptSet::load(&dir.0, Lookups::new()).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        (errs[0].script.as_str(), errs[0].line),
        ("b_bad.rhai", Some(2))
    );
    assert_eq!(
        (errs[1].script.as_str(), errs[1].line),
        ("c_bad.rhai", Some(4))
    );
    assert!(
        errs[0].to_string().starts_with("b_bad.rhai:2: "),
        "{}",
        errs[0]
    );
    assert!(errs.iter().all(|e| e.client_error.is_none()));
}

#[test]
fn load_fails_for_missing_directory() {
    let errs = ScriptSet::load(Path::new("/nonexistent/scimgate"), Lookups::new()).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("cannot read directory"),
        "{}",
        errs[0]
    );
}

#[test]
fn top_level_constant_inside_fn_is_a_compile_error() {
    let errs = load_err("const URN = \"x\";\nfn f() {\n  URN\n}");
    assert_eq!(errs[0].line, Some(3), "{}", errs[0]);
    assert!(errs[0].message.contains("URN"), "{}", errs[0]);
}

#[test]
fn has_fn_checks_name_and_arity() {
    let (_d, set) = load("fn to_backend(user, ctx) { user }\nfn f() { 1 }\nfn f(a) { a }");
    assert!(set.has_fn("t", "to_backend", 2));
    assert!(!set.has_fn("t", "to_backend", 1));
    assert!(set.has_fn("t", "f", 0) && set.has_fn("t", "f", 1));
    assert!(!set.has_fn("t", "missing", 0));
    assert!(!set.has_fn("other", "f", 0));
}

#[test]
fn calling_unknown_script_or_function_names_it() {
    let (_d, set) = load("fn f(a) { a }");
    let e = set.call("nope", "f", vec![]).unwrap_err();
    assert!(
        e.to_string().starts_with("nope.rhai: f: no script 'nope'"),
        "{e}"
    );
    let e = set.call("t", "f", vec![]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.rhai: f: no function 'f' taking 0 parameter(s)"
    );
}

#[test]
fn call_converts_arguments_and_result() {
    let (_d, set) = load(
        "fn f(user, ctx) {\n  #{ email: user.userName, op: ctx.op, n: user.n + 1, given: user.name?.givenName, tags: user.tags }\n}",
    );
    let out = run(
        &set,
        vec![
            json!({"userName": "a@b.c", "n": 41, "tags": ["x", 2, null]}),
            json!({"op": "create"}),
        ],
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"email": "a@b.c", "op": "create", "n": 42, "given": null, "tags": ["x", 2, null]})
    );
}

#[test]
fn runtime_error_carries_line_and_innermost_function() {
    let (_d, set) = load(
        "fn f(x) {\n  let a = 1;\n  helper(x)\n}\n\nfn helper(x) {\n  let y = x.name;\n  y.missing_method()\n}",
    );
    let e = run(&set, vec![json!({"name": "n"})]).unwrap_err();
    assert_eq!((e.function.as_str(), e.line), ("helper", Some(8)), "{e}");
    assert!(e.message.contains("missing_method"), "{e}");
    assert!(e.to_string().starts_with("t.rhai:8: helper: "), "{e}");
    assert!(e.client_error.is_none());
}

#[test]
fn throw_is_a_script_bug_with_its_line() {
    let e = eval_err("let x = 1;\nthrow \"nope\";");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.function, "f");
    assert!(
        e.message.contains("nope") && e.client_error.is_none(),
        "{e}"
    );
}

#[test]
fn result_that_is_not_json_is_an_error() {
    let e = eval_err("timestamp()");
    assert!(e.message.starts_with("result: "), "{e}");
    assert_eq!(e.function, "f");
}

// ---------------------------------------------------------------- sandbox

#[test]
fn infinite_loop_is_stopped_by_max_operations() {
    let e = eval_err("let i = 0;\nloop { i += 1; }");
    assert!(e.message.contains("Too many operations"), "{e}");
    assert_eq!(e.function, "f");
}

#[test]
fn runaway_recursion_is_stopped() {
    let (_d, set) = load("fn f(n) {\n  f(n + 1)\n}");
    let e = run(&set, vec![json!(0)]).unwrap_err();
    assert!(e.message.contains("Stack overflow"), "{e}");
}

#[test]
fn recursion_within_the_limit_works() {
    let (_d, set) = load("fn f(n) {\n  if n == 0 { 0 } else { 1 + f(n - 1) }\n}");
    let depth = MAX_CALL_LEVELS as i64 - 2;
    assert_eq!(run(&set, vec![json!(depth)]).unwrap(), json!(depth));
}

#[test]
fn a_runaway_call_is_stopped_by_its_time_budget() {
    let (_d, set) = load("fn f() {\n  let a = [];\n  loop { a.push(a.len()); }\n}");
    let set = set.with_time_budget(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let e = run(&set, vec![]).unwrap_err();
    assert!(e.message.contains("longer than 200 ms"), "{e}");
    assert_eq!((e.script.as_str(), e.function.as_str()), ("t.rhai", "f"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The budget is per call: the next call gets its own.
    let (_d2, quick) = load("fn f() { 1 }");
    assert_eq!(run(&quick, vec![]).unwrap(), json!(1));
}

/// On a multi-threaded runtime a call first runs inline for [`INLINE_SLICE`]; one that needs
/// longer is run again off the workers with the rest of its budget and returns the same
/// result, and a runaway is still stopped by the whole budget (not by the slice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_inline_slice_run_again_off_the_workers() {
    // Sums 0..n: about 40 ms at n = 200,000 in a release build, longer in debug.
    let (_d, set) = load("fn f(n) {\n  let s = 0;\n  for i in 0..n { s += i; }\n  s\n}");
    let started = std::time::Instant::now();
    let got = run(&set, vec![json!(200_000)]).unwrap();
    assert_eq!(got, json!(199_999i64 * 200_000 / 2));
    assert!(
        started.elapsed() > INLINE_SLICE,
        "the call outlasted the slice"
    );
    assert_eq!(run(&set, vec![json!(10)]).unwrap(), json!(45));
    let (_d, spin) = load("fn f() {\n  let a = [];\n  loop { a.push(a.len()); }\n}");
    let spin = spin.with_time_budget(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = run(&spin, vec![]).unwrap_err();
    assert!(e.message.contains("longer than 300 ms"), "{e}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(290));
}

#[test]
fn huge_string_array_and_map_are_refused() {
    let e = eval_err("let s = \"x\";\nwhile true { s += s; }");
    assert!(e.message.contains("too large"), "{e}");
    let e = eval_err("let a = [1];\nwhile true { a += a; }");
    assert!(e.message.contains("too large"), "{e}");
    // Keys double each round; `+=` is where rhai checks a map's size.
    let e = eval_err(
        "let m = #{ k: 0 };\nlet r = 0;\nwhile true { r += 1; let n = #{}; for k in m.keys() { n[`${k}_${r}`] = 0; } m += n; }",
    );
    assert!(e.message.contains("too large"), "{e}");
}

#[test]
fn deeply_nested_expression_is_refused_at_load() {
    let depth = MAX_EXPR_DEPTHS.1 + 10;
    let src = format!("fn f() {{ {}1{} }}", "(".repeat(depth), ")".repeat(depth));
    let errs = load_err(&src);
    assert!(
        errs[0].message.contains("maximum complexity"),
        "{}",
        errs[0]
    );
}

#[test]
fn no_modules_eval_or_io_functions() {
    let errs = load_err("import \"/etc/passwd\" as pw;\nfn f() { 1 }");
    assert_eq!(errs[0].line, Some(1), "{}", errs[0]);
    let errs = load_err("fn f() {\n  import \"helpers\" as h;\n  h::x()\n}");
    assert_eq!(errs[0].line, Some(2), "{}", errs[0]);
    let errs = load_err("fn f() {\n  eval(\"1\")\n}");
    assert_eq!(errs[0].line, Some(2), "{}", errs[0]);
    for call in [
        "open_file(\"/etc/passwd\")",
        "read_file(\"/etc/passwd\")",
        "http_get(\"http://127.0.0.1/\")",
        "system(\"ls\")",
    ] {
        let e = eval_err(call);
        assert!(e.message.contains("Function not found"), "{call}: {e}");
    }
}

#[test]
fn print_and_debug_go_to_tracing_not_stdout() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let (_d, set) =
        load("fn f() {\n  print(\"hello from script\");\n  debug(\"dbg value\");\n  1\n}");
    tracing::subscriber::with_default(subscriber, || run(&set, vec![]).unwrap());
    let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("hello from script"), "{logged}");
    assert!(
        logged.contains("dbg value") && logged.contains("script=\"t.rhai\""),
        "{logged}"
    );
}

// ---------------------------------------------------------------- helpers

#[test]
fn helper_split() {
    assert_eq!(
        eval("split(\" Folder 1, Folder 2 ,, \", \",\")"),
        json!(["Folder 1", "Folder 2"])
    );
    assert_eq!(
        eval("split([\"a,b\", \"c\"], \",\")"),
        json!(["a", "b", "c"])
    );
    assert_eq!(eval("split((), \",\")"), json!([]));
}

#[test]
fn helper_flatten_extension() {
    let (_d, set) = load(
        "fn f(user) {\n  flatten_extension(user, \"urn:ietf:params:scim:schemas:extension:2.0:Metadata\")\n}",
    );
    let user = json!({
        "userName": "a@b.c",
        "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:2.0:METADATA": {
            "costCentre": "CC-7", "level": 3, "remote": true, "tags": ["a", "b"], "gone": null,
            "nested": {"k": 1}
        }
    });
    assert_eq!(
        run(&set, vec![user]).unwrap(),
        json!({"costCentre": "CC-7", "level": "3", "remote": "true", "tags": "[\"a\",\"b\"]",
               "nested": "{\"k\":1}"})
    );
    assert_eq!(
        run(&set, vec![json!({"userName": "x"})]).unwrap(),
        json!({})
    );
    assert_eq!(eval("flatten_extension((), \"urn:x\")"), json!({}));
}

#[test]
fn helper_case_and_trim() {
    assert_eq!(
        eval("[lower(\"ÄbC\"), upper(\"abc\"), trim(\"  x y  \"), lower(()), upper(()), trim(())]"),
        json!(["äbc", "ABC", "x y", null, null, null])
    );
    // Method style works too and returns the new value.
    assert_eq!(eval("let s = \" a \"; s.trim()"), json!("a"));
}

#[test]
fn helper_get_ci() {
    assert_eq!(
        eval(
            "let m = #{ \"userName\": 1, \"USERNAME\": 2, other: 3 };\n[get_ci(m, \"userName\"), get_ci(m, \"OTHER\"), get_ci(m, \"none\"), get_ci((), \"x\")]"
        ),
        json!([1, 3, null, null])
    );
}

#[test]
fn helper_dates() {
    let now = eval("now()");
    let parsed = chrono::DateTime::parse_from_rfc3339(now.as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now().timestamp() - parsed.timestamp()).abs() < 5);
    assert_eq!(
        eval(
            "[parse_date(\"2024-01-02T03:04:05Z\"), parse_date(\"not a date\"), parse_date(()), format_date(1704164645)]"
        ),
        json!([1704164645, null, null, "2024-01-02T03:04:05Z"])
    );
    assert_eq!(
        eval("format_date(parse_date(\"2024-03-01\") + 86400)"),
        json!("2024-03-02T00:00:00Z")
    );
}

#[test]
fn helper_json() {
    assert_eq!(
        eval("to_json(#{ a: [1, \"x\", ()], b: true })"),
        json!("{\"a\":[1,\"x\",null],\"b\":true}")
    );
    assert_eq!(eval("to_json([1, 2])"), json!("[1,2]"));
    assert_eq!(
        eval("from_json(\"{\\\"k\\\": [1, 2.5, null]}\").k"),
        json!([1, 2.5, null])
    );
    let e = eval_err("from_json(\"{oops\")");
    assert!(e.message.contains("from_json"), "{e}");
    assert_eq!(
        eval("let r = 0; try { from_json(\"{\"); } catch { r = 1; } r"),
        json!(1)
    );
}

#[test]
fn helper_fail_is_a_client_error_with_line() {
    let (_d, set) = load(
        "fn f(user) {\n  check(user);\n  1\n}\nfn check(user) {\n  if user.userName == () {\n    fail(\"invalidValue\", \"userName is required\");\n  }\n}",
    );
    let e = run(&set, vec![json!({})]).unwrap_err();
    assert_eq!(e.client_error, Some(ScimType::InvalidValue));
    assert_eq!(e.message, "userName is required");
    assert_eq!((e.function.as_str(), e.line), ("check", Some(7)));
    assert_eq!(e.client_scim_error().unwrap().status, 400);
    assert_eq!(run(&set, vec![json!({"userName": "x"})]).unwrap(), json!(1));

    let e = eval_err("fail(\"Uniqueness\", \"email in use\")");
    assert_eq!(e.client_error, Some(ScimType::Uniqueness));
    assert_eq!(e.to_string(), "t.rhai:2: f: email in use");
    assert_eq!(e.client_scim_error().unwrap().status, 409);

    let e = eval_err("fail(\"teapot\", \"x\")");
    assert!(
        e.client_error.is_none() && e.message.contains("unknown scimType"),
        "{e}"
    );
}

// ---------------------------------------------------------------- lookups

#[test]
fn lookup_reads_tables_set_after_load() {
    let lookups = Lookups::new();
    let dir = Dir::new(&[(
        "t.rhai",
        "fn f(office) {\n  let o = lookup(\"offices\", office);\n  if o == () { () } else { o.id }\n}",
    )]);
    let set = ScriptSet::load(&dir.0, lookups.clone()).unwrap();
    assert_eq!(run(&set, vec![json!("Sydney")]).unwrap(), Value::Null);
    lookups.set("offices", "name", vec![json!({"id": 3, "name": "Sydney"})]);
    assert_eq!(run(&set, vec![json!("  sydney ")]).unwrap(), json!(3));
    assert_eq!(run(&set, vec![json!("Perth")]).unwrap(), Value::Null);
    assert_eq!(run(&set, vec![Value::Null]).unwrap(), Value::Null);
    set.lookups()
        .set("offices", "name", vec![json!({"id": 4, "name": "Sydney"})]);
    assert_eq!(run(&set, vec![json!("Sydney")]).unwrap(), json!(4));
}

#[test]
fn lookup_by_number_and_per_set_tables() {
    let a = Lookups::new();
    a.set("users", "id", vec![json!({"id": 7, "email": "a@x"})]);
    let b = Lookups::new();
    b.set("users", "id", vec![json!({"id": 7, "email": "b@x"})]);
    let src = "fn f(id) { lookup(\"users\", id).email }";
    let dir = Dir::new(&[("t.rhai", src)]);
    let set_a = ScriptSet::load(&dir.0, a).unwrap();
    let set_b = ScriptSet::load(&dir.0, b).unwrap();
    // Both sets share this thread's engine; each call still sees its own tables.
    assert_eq!(run(&set_a, vec![json!(7)]).unwrap(), json!("a@x"));
    assert_eq!(run(&set_b, vec![json!("7")]).unwrap(), json!("b@x"));
    assert_eq!(run(&set_a, vec![json!(7)]).unwrap(), json!("a@x"));
}

// ---------------------------------------------------------------- plans

#[test]
fn call_plan_returns_steps() {
    let (_d, set) = load(
        "fn f(rec, ctx) {\n  [\n    #{ method: \"patch\", path: `/api/users/${rec.id}`, body: #{ status: \"inactive\" } },\n    #{ method: \"DELETE\", path: `/api/users/${rec.id}/sessions`, query: #{ all: true } },\n  ]\n}",
    );
    let plan = set
        .call_plan("t", "f", vec![json!({"id": 42}), json!({"op": "delete"})])
        .unwrap();
    assert_eq!(
        plan,
        vec![
            PlanStep {
                method: "PATCH".into(),
                path: "/api/users/42".into(),
                query: vec![],
                body: Some(json!({"status": "inactive"})),
                missing_ok: false,
            },
            PlanStep {
                method: "DELETE".into(),
                path: "/api/users/42/sessions".into(),
                query: vec![("all".into(), "true".into())],
                body: None,
                missing_ok: false,
            },
        ]
    );
}

#[test]
fn malformed_plan_is_a_script_error() {
    let (_d, set) =
        load("fn f() {\n  [#{ method: \"GET\", path: \"https://elsewhere.example/x\" }]\n}");
    let e = set.call_plan("t", "f", vec![]).unwrap_err();
    assert!(e.to_string().starts_with("t.rhai: f: plan step 1: "), "{e}");
    assert!(e.client_error.is_none());
}

// ---------------------------------------------------------------- reload

#[test]
fn reload_swaps_scripts_and_keeps_old_ones_on_error() {
    let dir = Dir::new(&[("t.rhai", "fn f() { 1 }")]);
    let set = ScriptSet::load(&dir.0, Lookups::new()).unwrap();
    assert_eq!(run(&set, vec![]).unwrap(), json!(1));

    dir.write("t.rhai", "fn f() { 2 }");
    dir.write("extra.rhai", "fn g(a) { a }");
    // Edits have no effect until reload.
    assert_eq!(run(&set, vec![]).unwrap(), json!(1));
    assert!(!set.has_fn("extra", "g", 1));
    set.reload().unwrap();
    assert_eq!(run(&set, vec![]).unwrap(), json!(2));
    assert!(set.has_fn("extra", "g", 1));

    dir.write("t.rhai", "fn f() { 3 }");
    dir.write("extra.rhai", "fn g(a) {\n  a +\n}");
    let errs = set.reload().unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].script.as_str(), errs[0].line),
        ("extra.rhai", Some(3))
    );
    // Nothing of the failed reload is visible, not even the file that compiled.
    assert_eq!(run(&set, vec![]).unwrap(), json!(2));
    assert!(set.has_fn("extra", "g", 1));
}

// ---------------------------------------------------------------- threads

#[test]
fn concurrent_calls_and_reloads_from_several_threads() {
    let dir = Dir::new(&[(
        "t.rhai",
        "fn f(user) {\n  #{ v: 1, email: lower(user.userName), n: user.n }\n}",
    )]);
    let set = ScriptSet::load(&dir.0, Lookups::new()).unwrap();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let set = &set;
                s.spawn(move || {
                    let mut versions = [0usize; 2];
                    for i in 0..200 {
                        let out =
                            run(set, vec![json!({"userName": format!("U{t}@X"), "n": i})]).unwrap();
                        assert_eq!(out["email"], json!(format!("u{t}@x")));
                        assert_eq!(out["n"], json!(i));
                        let v = out["v"].as_i64().unwrap();
                        assert!(v == 1 || v == 2, "{out}");
                        versions[(v - 1) as usize] += 1;
                    }
                    versions
                })
            })
            .collect();
        s.spawn(|| {
            dir.write(
                "t.rhai",
                "fn f(user) {\n  #{ v: 2, email: lower(user.userName), n: user.n }\n}",
            );
            set.reload().unwrap();
        });
        for w in workers {
            let versions = w.join().unwrap();
            assert_eq!(versions[0] + versions[1], 200);
        }
    });
    assert_eq!(
        run(&set, vec![json!({"userName": "A", "n": 0})]).unwrap()["v"],
        json!(2)
    );
}

// ---------------------------------------------------------------- bundled profiles

/// Runs the sample I/O of every profile under `scripts/`, so a new profile's samples are
/// checked without touching this test.
#[test]
fn bundled_profile_samples_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut profiles: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    profiles.sort();
    assert!(
        profiles.iter().any(|p| p.ends_with("default")),
        "{profiles:?}"
    );
    let mut failures = Vec::new();
    let mut passed = 0;
    for profile in &profiles {
        match check_samples(profile) {
            Ok(n) => passed += n,
            Err(errs) => failures.extend(errs),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(passed >= 9, "only {passed} samples ran");
}

#[test]
fn check_samples_reports_mismatches() {
    let dir = Dir::new(&[(
        "user.rhai",
        "fn to_backend(u, ctx) { #{ email: u.userName } }",
    )]);
    std::fs::create_dir(dir.0.join("tests")).unwrap();
    dir.write(
        "tests/ok.json",
        r#"{"script":"user","function":"to_backend","args":[{"userName":"a"},{}],"expect":{"email":"a"}}"#,
    );
    assert_eq!(check_samples(&dir.0), Ok(1));
    dir.write(
        "tests/wrong.json",
        r#"{"description":"wrong on purpose","script":"user","function":"to_backend","args":[{"userName":"a"},{}],"expect":{"email":"b"}}"#,
    );
    dir.write(
        "tests/no_fail.json",
        r#"{"script":"user","function":"to_backend","args":[{"userName":"a"},{}],"expect_error":"invalidValue"}"#,
    );
    let errs = check_samples(&dir.0).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("no_fail.json") && errs[0].contains("expected fail"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains("wrong on purpose: result differs"),
        "{}",
        errs[1]
    );
}

#[test]
fn failed_calls_are_counted_as_bugs_or_rejections() {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let dir = Dir::new(&[(
        "t.rhai",
        "fn ok() { 1 }\nfn bug() { let x = (); x.nope() }\nfn no(v) { fail(\"invalidValue\", \"no\") }\nfn plan() { 42 }",
    )]);
    let set = ScriptSet::load(&dir.0, Lookups::new())
        .unwrap()
        .with_metrics(metrics.clone());
    set.call("t", "ok", vec![]).unwrap();
    assert!(set.call("t", "bug", vec![]).is_err());
    assert!(set.call("t", "missing", vec![]).is_err());
    assert!(set.call("t", "no", vec![json!(1)]).is_err());
    assert!(
        set.call_plan("t", "plan", vec![]).is_err(),
        "not a list of steps"
    );
    let text = metrics.encode();
    for line in [
        r#"scimgate_script_errors_total{kind="error"} 3"#,
        r#"scimgate_script_errors_total{kind="rejected"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

/// The standard `present` / `set_if` a script defines word for word are served by their
/// Rust twins (the script's copies are dropped at load), with the same results; a variant
/// stays the script's own.
#[test]
fn standard_helpers_are_served_natively_and_variants_stay_the_script_s() {
    let standard = "fn f(rec) {\n  let out = #{};\n  out.set_if(\"a\", rec.a);\n  out.set_if(\"b\", rec.b);\n  out.set_if(\"c\", rec.c);\n  out.set_if(\"d\", rec.d);\n  out.p = [present(rec.a), present(rec.b), present(rec.c), present(rec.d), present(rec.none)];\n  out\n}\n\nfn present(v) {\n    v != () && v != \"\"\n}\n\n// comment\nfn set_if(key, value) {\n    if present(value) {\n        this[key] = value;\n    }\n}\n";
    let (_d, set) = load(standard);
    let compiled = set.compiled("t", "f", 1).unwrap();
    assert!(!compiled.fns.contains_key("present") && !compiled.fns.contains_key("set_if"));
    let input = json!({"a": "x", "b": "", "c": 0, "d": null});
    let want = json!({"a": "x", "c": 0, "p": [true, false, true, false, false]});
    assert_eq!(run(&set, vec![input.clone()]).unwrap(), want);

    // A present() that also treats 0 as absent stays the script's; so does set_if with it.
    let variant = standard.replace("v != () && v != \"\"", "v != () && v != \"\" && v != 0");
    let (_d, set) = load(&variant);
    let compiled = set.compiled("t", "f", 1).unwrap();
    assert!(compiled.fns.contains_key("present") && compiled.fns.contains_key("set_if"));
    let want = json!({"a": "x", "p": [true, false, false, false, false]});
    assert_eq!(run(&set, vec![input]).unwrap(), want);
    // Every bundled profile's copies are the standard ones.
    for f in [
        "default/user",
        "default/group",
        "draftt/user",
        "softdrive/user",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scripts/{f}.rhai"));
        let src = std::fs::read_to_string(&path).unwrap();
        for (name, _, canonical) in INTRINSICS {
            assert_eq!(
                definition_text(&src, name).as_deref(),
                Some(canonical),
                "{f} {name}"
            );
        }
    }
}
