//! Emits the static affine tables of odd multiples of the P-256 generator (`G, 3G, …`) and of
//! `2^128·G` (for the split multiplication of prepared keys) in Montgomery form, computed with
//! the crate's own field and point code, so that no process (or wasm instance) pays for
//! building them at run time. Building the 64-point table at run time (e.g. behind a
//! `OnceLock`) measured 19–37 µs natively and ~39 µs inside wasmtime, paid again by every
//! fresh wasm instance; as constants each costs nothing but 4 KiB of data.

#[allow(dead_code)]
#[path = "src/p256/field.rs"]
mod field;
#[allow(dead_code)]
#[path = "src/p256/point.rs"]
mod point;

use std::fmt::Write as _;

/// Must match `G_WINDOW` and `SPLIT` in src/p256/mul.rs (checked by unit tests there).
const G_WINDOW: u32 = 8;
const SPLIT: u32 = 128;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/p256/field.rs");
    println!("cargo::rerun-if-changed=src/p256/point.rs");
    let count = 1usize << (G_WINDOW - 2);
    let mut s = String::new();
    for (name, shift) in [("G_TABLE", 0), ("G_HI_TABLE", SPLIT)] {
        let table = point::generator_odd_multiples(count, shift);
        assert_eq!(table.len(), count, "generator table");
        writeln!(s, "static {name}: [Affine; {count}] = [").unwrap();
        for p in &table {
            let l = |f: &field::Fp| {
                let v = f.0;
                format!("[{:#018x}, {:#018x}, {:#018x}, {:#018x}]", v[0], v[1], v[2], v[3])
            };
            writeln!(s, "    Affine {{ x: Fp({}), y: Fp({}) }},", l(&p.x), l(&p.y)).unwrap();
        }
        writeln!(s, "];").unwrap();
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("g_table.rs");
    std::fs::write(out, s).unwrap();
}
