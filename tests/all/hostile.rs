//! Hostile components written in WAT: every way the spec lets a component take memory (linear
//! memories, several of them, in several core instances; table elements, grown or declared)
//! draws on one budget per instance, and a refused growth is a clear fault, never host memory.

use cryptohost::wasm::{CacheSetting, Limits, Runtime};

fn runtime() -> Runtime {
    Runtime::new(Limits::default(), CacheSetting::Disabled).expect("runtime")
}

/// The server's runtime: wasmtime's pooling allocator, one slot.
fn pooled() -> Runtime {
    Runtime::pooled(Limits::default(), CacheSetting::Disabled, 1).expect("pooled runtime")
}

/// A component around one core module, exporting its `run` function when it has one.
fn component(module: &str, has_run: bool) -> Vec<u8> {
    let run = if has_run { r#"(func (export "run") (canon lift (core func $i "run")))"# } else { "" };
    let text = format!("(component (core module $m {module}) (core instance $i (instantiate $m)) {run})");
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad WAT: {e}\n{text}"))
}

fn refused_on_demand(bytes: &[u8]) -> String {
    let err = runtime().probe(bytes).expect_err("the sandbox must refuse this");
    assert!(err.contains("memory limit"), "should name the memory limit: {err}");
    err
}

/// Refused by the on-demand runtime (naming the limit) and by the pooled one (whose slot
/// sizes may refuse it first).
fn refused(bytes: &[u8]) -> String {
    let err = refused_on_demand(bytes);
    let pooled_err = pooled().probe(bytes).expect_err("the pooled sandbox must refuse this too");
    assert!(!pooled_err.is_empty());
    err
}

#[test]
fn growth_within_the_budget_is_allowed() {
    // 6.25 MiB of memory and 1,000 table elements: far inside the 64 MiB default.
    let bytes = component(
        r#"(memory 1) (table $t 1 funcref)
           (func (export "run")
             (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))
             (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1)) (then unreachable)))"#,
        true,
    );
    runtime().probe(&bytes).expect("a modest guest runs");
    pooled().probe(&bytes).expect("a modest guest runs in a pooled slot");
}

#[test]
fn one_huge_table_grow_is_refused() {
    // 2^27 elements would be 2 GiB of host memory.
    let err = refused(&component(
        r#"(table $t 1 funcref)
           (func (export "run") (drop (table.grow $t (ref.null func) (i32.const 134217728))))"#,
        true,
    ));
    assert!(err.contains("table"), "{err}");
}

#[test]
fn a_huge_declared_table_is_refused_at_instantiation() {
    let err = refused(&component("(table 50000000 funcref)", false));
    assert!(err.contains("instantiation"), "{err}");
}

#[test]
fn table_grown_step_by_step_stops_at_the_budget() {
    let bytes = component(
        r#"(table $t 0 funcref)
           (func (export "run")
             (loop $again
               (br_if $again (i32.ne (table.grow $t (ref.null func) (i32.const 65536)) (i32.const -1)))))"#,
        true,
    );
    refused_on_demand(&bytes);
    // In a pooled slot the table stops at the slot's size first: `table.grow` answers -1
    // (before the budget would trap), so the guest's loop ends.
    pooled().probe(&bytes).expect("growth stops at the pool's table size");
}

#[test]
fn memory_grown_past_the_budget_is_refused() {
    // 2,000 pages = 125 MiB.
    refused(&component(r#"(memory 1) (func (export "run") (drop (memory.grow (i32.const 2000))))"#, true));
}

#[test]
fn a_huge_declared_memory_is_refused_at_instantiation() {
    refused(&component("(memory 1100)", false));
}

#[test]
fn four_memories_share_one_budget() {
    // Each stays under 64 MiB (300 pages = 18.75 MiB); together they are 75 MiB.
    let err = refused(&component(
        r#"(memory $a 0) (memory $b 0) (memory $c 0) (memory $d 0)
           (func (export "run")
             (drop (memory.grow $a (i32.const 300)))
             (drop (memory.grow $b (i32.const 300)))
             (drop (memory.grow $c (i32.const 300)))
             (drop (memory.grow $d (i32.const 300))))"#,
        true,
    ));
    assert!(err.contains("memories and tables together"), "{err}");
}

#[test]
fn memory_and_table_elements_share_one_budget() {
    // 50 MiB of memory, then 1 Mi table elements (16 MiB): each fits alone, not together.
    refused(&component(
        r#"(memory 800) (table $t 0 funcref)
           (func (export "run") (drop (table.grow $t (ref.null func) (i32.const 1048576))))"#,
        true,
    ));
}

#[test]
fn several_core_instances_share_one_budget() {
    // Two instances of a module with a 40 MiB memory each.
    let text = r#"(component
        (core module $m (memory 640))
        (core instance $a (instantiate $m))
        (core instance $b (instantiate $m)))"#;
    let err = runtime().probe(&wat::parse_str(text).unwrap()).expect_err("80 MiB in one store");
    assert!(err.contains("memory limit"), "{err}");
}

#[test]
fn too_many_tables_or_memories_are_refused() {
    let tables: String = (0..40).map(|_| "(table 1 funcref) ").collect();
    let err = runtime().probe(&component(&tables, false)).expect_err("40 tables");
    assert!(err.contains("instantiation"), "{err}");
    let memories: String = (0..8).map(|_| "(memory 0) ").collect();
    let err = runtime().probe(&component(&memories, false)).expect_err("8 memories");
    assert!(err.contains("instantiation"), "{err}");
}

#[test]
fn a_loop_is_stopped_at_the_deadline() {
    let err =
        runtime().probe(&component(r#"(func (export "run") (loop $l (br $l)))"#, true)).expect_err("endless loop");
    assert!(err.contains("CPU deadline"), "{err}");
}
