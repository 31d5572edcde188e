//! Property tests: generated histories pass, planted violations are found with small
//! witnesses, and the fast path, the search and a brute-force oracle agree.

use std::collections::HashSet;

use clobber_check::generator::{GenOptions, Inject, Mix, Rng, generate};
use clobber_check::history::{Op, Outcome, Record};
use clobber_check::model::Model;
use clobber_check::model::register::{RegEntry, Register};
use clobber_check::{CheckOptions, Verdict, check_kv};
use proptest::prelude::*;

fn mix(kind: u8) -> Mix {
    match kind {
        0 => Mix::default(),
        1 => Mix {
            set: 40.0,
            get: 40.0,
            delete: 10.0,
            list: 5.0,
            clear: 5.0,
        },
        3 => Mix {
            set: 40.0,
            get: 20.0,
            delete: 10.0,
            list: 30.0,
            clear: 0.0,
        },
        _ => Mix {
            set: 50.0,
            get: 50.0,
            delete: 0.0,
            list: 0.0,
            clear: 0.0,
        },
    }
}

fn small(
    seed: u64,
    ops: usize,
    keys: usize,
    clients: usize,
    mix_kind: u8,
    indet: f64,
    dups: f64,
) -> GenOptions {
    GenOptions {
        ops,
        keys,
        clients,
        zipf: 0.5,
        mix: mix(mix_kind),
        latency_ns: 2_000_000,
        think_ns: 500_000,
        indeterminate: indet,
        duplicates: dups,
        seed,
        inject: None,
    }
}

fn search_only() -> CheckOptions {
    CheckOptions {
        fast_path: false,
        ..CheckOptions::default()
    }
}

/// Is there a legal order? Tries every order consistent with real time (no JIT, no
/// pruning; memoised on the set done and the state). Indeterminate operations may be
/// left out.
fn brute_force(model: &Register<'_>, ops: &[RegEntry]) -> bool {
    fn go(
        model: &Register<'_>,
        ops: &[RegEntry],
        done: u32,
        state: u32,
        seen: &mut HashSet<(u32, u32)>,
    ) -> bool {
        let required_left = ops
            .iter()
            .enumerate()
            .any(|(i, o)| done & (1 << i) == 0 && o.complete.is_some());
        if !required_left {
            return true;
        }
        if !seen.insert((done, state)) {
            return false;
        }
        for (i, o) in ops.iter().enumerate() {
            if done & (1 << i) != 0 {
                continue;
            }
            let blocked = ops
                .iter()
                .enumerate()
                .any(|(j, p)| done & (1 << j) == 0 && j != i && p.precedes(o));
            if blocked {
                continue;
            }
            if let Some(s) = model.step(&state, &o.input, &o.output)
                && go(model, ops, done | (1 << i), s, seen)
            {
                return true;
            }
        }
        false
    }
    go(model, ops, 0, model.init(), &mut HashSet::new())
}

/// Change a few reads to other values (or to "not found") to make violations likely.
fn perturb(records: &mut [Record], rng: &mut Rng, changes: usize) {
    let values: Vec<String> = records
        .iter()
        .filter_map(|r| (r.op == Op::Set).then(|| r.value.clone()).flatten())
        .collect();
    let reads: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].op == Op::Get && records[i].outcome != Outcome::Unknown)
        .collect();
    if reads.is_empty() {
        return;
    }
    for _ in 0..changes {
        let r = &mut records[reads[rng.below(reads.len() as u64) as usize]];
        if values.is_empty() || rng.below(3) == 0 {
            r.outcome = Outcome::NotFound;
            r.value = None;
        } else {
            r.outcome = Outcome::Ok;
            r.value = Some(values[rng.below(values.len() as u64) as usize].clone());
        }
    }
}

/// A random register history: writes, reads and compare-and-sets over 3 values,
/// some indeterminate, with random intervals and random (often impossible) replies.
fn random_register(seed: u64, n: usize) -> clobber_check::import::RegisterHistory {
    use clobber_check::intern::Interner;
    use clobber_check::model::Entry;
    use clobber_check::model::register::{Action, Reply};
    let mut rng = Rng::new(seed);
    let mut values = Interner::new("nil");
    let ids: Vec<u32> = ["1", "2", "3"].iter().map(|v| values.intern(v)).collect();
    let val = |rng: &mut Rng| {
        if rng.below(4) == 0 {
            0
        } else {
            ids[rng.below(3) as usize]
        }
    };
    let entries = (0..n)
        .map(|i| {
            let invoke = rng.below(20);
            let complete = invoke + 1 + rng.below(8);
            let (input, output) = match rng.below(3) {
                0 => (Action::Write(val(&mut rng)), Reply::Ok),
                1 => (Action::Read, Reply::Value(val(&mut rng))),
                _ => {
                    let cas = Action::Cas {
                        expect: val(&mut rng),
                        new: val(&mut rng),
                    };
                    (
                        cas,
                        if rng.below(2) == 0 {
                            Reply::Ok
                        } else {
                            Reply::Mismatch
                        },
                    )
                }
            };
            let unknown = input != Action::Read && rng.below(4) == 0;
            Entry {
                process: i as u64,
                invoke,
                complete: (!unknown).then_some(complete),
                input,
                output,
                source: i,
            }
        })
        .collect();
    clobber_check::import::RegisterHistory { values, entries }
}

/// Is this one-key history linearizable? Works on the records alone (no code of the
/// checker): tries every order consistent with real time, memoised on the set of
/// operations done and the key's value. `fail` did not happen; `unknown` may or may
/// not have happened and answers nothing; a `get` or `list` reads, `delete`/`ok`
/// needs the key present and `delete`/`not_found` absent, `clear` empties it.
/// The key's value after a record runs from a state, or None if it cannot run there.
type Apply<'a> = dyn Fn(&Record, &Option<String>) -> Option<Option<String>> + 'a;

fn linearizable_one_key(records: &[Record]) -> bool {
    let ops: Vec<&Record> = records
        .iter()
        .filter(|r| r.outcome != Outcome::Fail)
        .collect();
    assert!(ops.len() <= 32, "the oracle is for small histories");
    let key = ops.iter().find_map(|r| r.key.clone());
    let precedes = |a: &Record, b: &Record| a.complete_ns.is_some_and(|c| c < b.invoke_ns);
    // The key's value after `r` runs from `state`, or None if `r` cannot run there.
    let apply = |r: &Record, state: &Option<String>| -> Option<Option<String>> {
        let unknown = r.outcome == Outcome::Unknown;
        match (r.op, r.outcome) {
            (Op::Set, _) => Some(r.value.clone()),
            (Op::Clear, _) => Some(None),
            (Op::Delete, _) if unknown => Some(None),
            (Op::Delete, Outcome::Ok) => state.as_ref().map(|_| None),
            (Op::Delete, Outcome::NotFound) => state.is_none().then_some(None),
            (Op::Get | Op::List, _) if unknown => Some(state.clone()),
            (Op::Get, Outcome::Ok) => (r.value == *state).then(|| state.clone()),
            (Op::Get, Outcome::NotFound) => state.is_none().then_some(None),
            (Op::List, Outcome::Ok) => {
                let keys = r.keys.clone().unwrap_or_default();
                let shown = keys.iter().any(|k| Some(k) == key.as_ref());
                let only_ours = keys.iter().all(|k| Some(k) == key.as_ref());
                (only_ours && shown == state.is_some()).then(|| state.clone())
            }
            _ => None,
        }
    };
    fn go(
        ops: &[&Record],
        done: u32,
        state: Option<String>,
        seen: &mut HashSet<(u32, Option<String>)>,
        precedes: &dyn Fn(&Record, &Record) -> bool,
        apply: &Apply<'_>,
    ) -> bool {
        let required_left = ops
            .iter()
            .enumerate()
            .any(|(i, r)| done & (1 << i) == 0 && r.outcome != Outcome::Unknown);
        if !required_left {
            return true;
        }
        if !seen.insert((done, state.clone())) {
            return false;
        }
        for (i, r) in ops.iter().enumerate() {
            let blocked = ops
                .iter()
                .enumerate()
                .any(|(j, p)| done & (1 << j) == 0 && j != i && precedes(p, r));
            if done & (1 << i) != 0 || blocked {
                continue;
            }
            if let Some(next) = apply(r, &state)
                && go(ops, done | (1 << i), next, seen, precedes, apply)
            {
                return true;
            }
        }
        false
    }
    go(&ops, 0, None, &mut HashSet::new(), &precedes, &apply)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn register_search_agrees_with_brute_force(seed in any::<u64>(), n in 1usize..12) {
        let h = random_register(seed, n);
        let model = Register { values: &h.values };
        let expected = if brute_force(&model, &h.entries) { Verdict::Ok } else { Verdict::Violation };
        for fast_path in [true, false] {
            let options = CheckOptions { fast_path, ..CheckOptions::default() };
            let report = clobber_check::check_register(&h, &options);
            prop_assert_eq!(report.partitions[0].verdict, expected, "{:?}\n{}", h.entries, report.render_text());
        }
    }

    #[test]
    fn generated_histories_are_linearizable(
        seed in any::<u64>(), ops in 1usize..300, keys in 1usize..5, clients in 1usize..8,
        mix_kind in 0u8..4, indet in prop_oneof![Just(0.0), 0.0f64..0.2],
        dups in prop_oneof![Just(0.0), 0.0f64..0.3],
    ) {
        let g = generate(&small(seed, ops, keys, clients, mix_kind, indet, dups));
        let report = check_kv(&g.records, &CheckOptions::default());
        prop_assert_eq!(report.verdict(), Verdict::Ok, "{}", report.render_text());
        prop_assert!(report.lost_writes.is_empty());
    }

    #[test]
    fn planted_violations_are_found_with_tiny_witnesses(
        seed in any::<u64>(), ops in 50usize..400, keys in 1usize..4, clients in 2usize..8,
        stale in any::<bool>(), mix_kind in prop_oneof![Just(0u8), Just(2u8)],
    ) {
        let mut o = small(seed, ops, keys, clients, mix_kind, 0.0, 0.0);
        o.inject = Some(if stale { Inject::StaleRead } else { Inject::LostWrite });
        let g = generate(&o);
        let report = check_kv(&g.records, &CheckOptions::default());
        let Some(at) = g.injected_at else {
            // Nothing could be planted (no read to corrupt): the history is exactly as
            // generated, so it must pass, and without a lost write.
            prop_assert_eq!(report.verdict(), Verdict::Ok, "{}", report.render_text());
            prop_assert!(report.lost_writes.is_empty());
            return Ok(());
        };
        prop_assert_eq!(report.verdict(), Verdict::Violation);
        prop_assert!(!report.lost_writes.is_empty(), "{}", report.render_text());
        let bad = &report.partitions[0];
        prop_assert_eq!(bad.verdict, Verdict::Violation);
        let w = bad.witness.as_ref().expect("a violation has a witness");
        prop_assert!(w.ops.len() <= 4, "{}", report.render_text());
        prop_assert!(w.minimal);
        prop_assert!(w.ops.iter().any(|op| op.record == at), "witness misses the planted read #{at}:\n{}", report.render_text());
    }

    #[test]
    fn fast_path_search_and_brute_force_agree(
        seed in any::<u64>(), ops in 2usize..11, clients in 1usize..5, mix_kind in 0u8..3,
        indet in prop_oneof![Just(0.0), 0.0f64..0.3], dups in prop_oneof![Just(0.0), 0.0f64..0.5],
        changes in 0usize..3,
    ) {
        let mut g = generate(&small(seed, ops, 1, clients, mix_kind, indet, dups));
        perturb(&mut g.records, &mut Rng::new(seed ^ 0x5eed), changes);
        let fast = check_kv(&g.records, &CheckOptions::default());
        let search = check_kv(&g.records, &search_only());
        prop_assert!(fast.verdict() != Verdict::Unknown && search.verdict() != Verdict::Unknown);
        prop_assert_eq!(fast.verdict(), search.verdict(), "fast:\n{}\nsearch:\n{}", fast.render_text(), search.render_text());
        // An oracle that shares no code with the checker: a brute force over the raw
        // records of this one-key history, lost writes and list/clear included.
        let expected = linearizable_one_key(&g.records);
        prop_assert_eq!(expected, fast.verdict() == Verdict::Ok, "{}", fast.render_text());
        // Every witness is itself a violating history.
        for p in &fast.partitions {
            if let Some(w) = &p.witness {
                let sub: Vec<Record> = w.ops.iter().map(|op| g.records[op.record].clone()).collect();
                prop_assert_eq!(check_kv(&sub, &search_only()).verdict(), Verdict::Violation,
                    "witness passes on its own:\n{}", fast.render_text());
            }
        }
    }
}
