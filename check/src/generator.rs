//! Synthetic histories that are linearizable by construction, with one planted
//! violation on request.
//!
//! Clients run closed loops (think, invoke, wait for the reply). Every operation is
//! given a linearization point inside its interval; applying the operations to a
//! sequential map in the order of those points yields each operation's result, so
//! the history is linearizable by construction. An indeterminate operation gets an
//! `unknown` outcome and takes effect (at its point) or not, at random.
//!
//! All randomness flows from one seed ([`GenOptions::seed`]); the same options give
//! the same history, byte for byte.

use std::collections::{BTreeMap, BinaryHeap};

use crate::history::{Op, Outcome, Record};

/// The relative weights of the operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// `set`.
    pub set: f64,
    /// `get`.
    pub get: f64,
    /// `delete`.
    pub delete: f64,
    /// `list`.
    pub list: f64,
    /// `clear`.
    pub clear: f64,
}

impl Default for Mix {
    /// 45% set, 45% get, 10% delete.
    fn default() -> Self {
        Mix {
            set: 45.0,
            get: 45.0,
            delete: 10.0,
            list: 0.0,
            clear: 0.0,
        }
    }
}

/// Which violation to plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// A read that started after an acknowledged write finished sees the state
    /// before that write (the write was lost).
    LostWrite,
    /// A read sees a value that an acknowledged write had already overwritten
    /// before the read began.
    StaleRead,
}

/// Generator knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    /// Number of operations.
    pub ops: usize,
    /// Number of keys.
    pub keys: usize,
    /// Number of concurrent clients.
    pub clients: usize,
    /// Zipf exponent of the key popularity (0 = uniform).
    pub zipf: f64,
    /// Operation mix.
    pub mix: Mix,
    /// Mean latency of an operation (ns).
    pub latency_ns: u64,
    /// Mean think time between a client's operations (ns).
    pub think_ns: u64,
    /// Probability that an operation's outcome is unknown.
    pub indeterminate: f64,
    /// Probability that a `set` writes a value already written to its key.
    pub duplicates: f64,
    /// The seed.
    pub seed: u64,
    /// A violation to plant.
    pub inject: Option<Inject>,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            ops: 1000,
            keys: 10,
            clients: 16,
            zipf: 0.0,
            mix: Mix::default(),
            latency_ns: 2_000_000,
            think_ns: 1_000_000,
            indeterminate: 0.0,
            duplicates: 0.0,
            seed: 1,
            inject: None,
        }
    }
}

/// A generated history.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The records, by invocation time.
    pub records: Vec<Record>,
    /// The planted violation: the index of the read that was altered.
    pub injected_at: Option<usize>,
}

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// Exponential with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

#[derive(Debug, Clone)]
struct Planned {
    process: u64,
    op: Op,
    key: usize,
    invoke: u64,
    point: u64,
    complete: u64,
    unknown: bool,
    takes_effect: bool,
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn duration(rng: &mut Rng, mean: u64) -> u64 {
    // Half fixed, half exponential: mean `mean`, never below mean / 2.
    let m = mean as f64;
    (m * 0.5 + rng.exp(m * 0.5)) as u64
}

/// Generate a history.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn generate(o: &GenOptions) -> Generated {
    let mut rng = Rng::new(o.seed);
    let keys = o.keys.max(1);
    let clients = o.clients.max(1);
    // Zipf CDF over keys.
    let mut cdf = Vec::with_capacity(keys);
    let mut acc = 0.0;
    for i in 0..keys {
        #[allow(clippy::cast_precision_loss)]
        let w = 1.0 / ((i + 1) as f64).powf(o.zipf);
        acc += w;
        cdf.push(acc);
    }
    let m = o.mix;
    let weights = [
        (Op::Set, m.set),
        (Op::Get, m.get),
        (Op::Delete, m.delete),
        (Op::List, m.list),
        (Op::Clear, m.clear),
    ];
    let total: f64 = weights.iter().map(|w| w.1.max(0.0)).sum();
    // Timeline: the client with the earliest next invocation goes next.
    let mut heap: BinaryHeap<std::cmp::Reverse<(u64, u64)>> = (0..clients as u64)
        .map(|c| std::cmp::Reverse((1_000_000 + rng.below(o.think_ns.max(1)), c)))
        .collect();
    let mut planned = Vec::with_capacity(o.ops);
    while planned.len() < o.ops {
        let std::cmp::Reverse((t, c)) = heap.pop().expect("clients never run out");
        let mut pick = rng.unit() * total;
        let mut op = Op::Get;
        for (kind, w) in weights {
            let w = w.max(0.0);
            if pick < w {
                op = kind;
                break;
            }
            pick -= w;
        }
        let u = rng.unit() * acc;
        let key = cdf.partition_point(|&x| x < u).min(keys - 1);
        let lat = duration(&mut rng, o.latency_ns).max(2);
        let complete = t + lat;
        let point = t + 1 + rng.below(lat - 1);
        let unknown = rng.unit() < o.indeterminate;
        let takes_effect = !unknown || rng.below(2) == 0;
        planned.push(Planned {
            process: c,
            op,
            key,
            invoke: t,
            point,
            complete,
            unknown,
            takes_effect,
        });
        let think = duration(&mut rng, o.think_ns.max(1));
        heap.push(std::cmp::Reverse((complete + think, c)));
    }
    // Apply in linearization order.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_unstable_by_key(|&i| (planned[i].point, i));
    let mut state: BTreeMap<usize, String> = BTreeMap::new();
    let mut written: Vec<Vec<String>> = vec![Vec::new(); keys];
    let mut seq = vec![0u64; clients];
    let mut records: Vec<Option<Record>> = vec![None; planned.len()];
    for &i in &order {
        let p = &planned[i];
        let key_name = format!("k{}", p.key);
        let mut value = None;
        let mut keys_listed = None;
        let mut outcome = Outcome::Ok;
        let effect = p.takes_effect;
        match p.op {
            Op::Set => {
                let reuse = !written[p.key].is_empty() && rng.unit() < o.duplicates;
                let v = if reuse {
                    let w = &written[p.key];
                    w[usize::try_from(rng.below(w.len() as u64)).unwrap_or(0)].clone()
                } else {
                    let c = usize::try_from(p.process).unwrap_or(0);
                    seq[c] += 1;
                    format!("p{}-{}", p.process, seq[c])
                };
                written[p.key].push(v.clone());
                if effect {
                    state.insert(p.key, v.clone());
                }
                value = Some(v);
            }
            Op::Get => match state.get(&p.key) {
                Some(v) => value = Some(v.clone()),
                None => outcome = Outcome::NotFound,
            },
            Op::Delete => {
                let found = if effect {
                    state.remove(&p.key).is_some()
                } else {
                    state.contains_key(&p.key)
                };
                if !found {
                    outcome = Outcome::NotFound;
                }
            }
            Op::List => {
                keys_listed = Some(state.keys().map(|k| format!("k{k}")).collect());
            }
            Op::Clear => {
                if effect {
                    state.clear();
                }
            }
        }
        if p.unknown {
            outcome = Outcome::Unknown;
            if p.op == Op::Get {
                value = None;
            }
            keys_listed = None;
        }
        records[i] = Some(Record {
            process: p.process,
            op: p.op,
            key: matches!(p.op, Op::Set | Op::Get | Op::Delete).then_some(key_name),
            value,
            keys: keys_listed,
            outcome,
            invoke_ns: p.invoke,
            complete_ns: (!p.unknown).then_some(p.complete),
            error: p.unknown.then(|| "timed out".to_owned()),
            detail: None,
        });
    }
    let mut records: Vec<Record> = records
        .into_iter()
        .map(|r| r.expect("every op applied"))
        .collect();
    let injected_at = o
        .inject
        .and_then(|kind| inject(&mut records, kind, &mut rng));
    Generated {
        records,
        injected_at,
    }
}

/// Plant a violation: returns the index of the altered read, or `None` if the
/// history has no suitable spot.
fn inject(records: &mut [Record], kind: Inject, rng: &mut Rng) -> Option<usize> {
    let n = records.len();
    if n == 0 {
        return None;
    }
    let end = |r: &Record| r.complete_ns.unwrap_or(u64::MAX);
    let precedes = |a: &Record, b: &Record| end(a) < b.invoke_ns;
    let is_mutation = |r: &Record| r.op.is_mutation() && r.outcome != Outcome::Fail;
    // Writes per key and value (to know which values are unique).
    let mut writes: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in records.iter() {
        if r.op == Op::Set
            && let (Some(k), Some(v)) = (&r.key, &r.value)
        {
            *writes.entry((k.as_str(), v.as_str())).or_default() += 1;
        }
    }
    let unique = |k: &str, v: &str| writes.get(&(k, v)) == Some(&1);
    let start = usize::try_from(rng.below(n as u64)).unwrap_or(0);
    let mut found = None;
    'scan: for off in 0..n {
        let gi = (start + off) % n;
        let g = &records[gi];
        if g.op != Op::Get || g.outcome != Outcome::Ok {
            continue;
        }
        let (Some(k), Some(v)) = (g.key.as_deref(), g.value.as_deref()) else {
            continue;
        };
        if !unique(k, v) {
            continue;
        }
        let Some(wi) = records.iter().position(|r| {
            r.op == Op::Set && r.key.as_deref() == Some(k) && r.value.as_deref() == Some(v)
        }) else {
            continue;
        };
        let w = &records[wi];
        if w.outcome != Outcome::Ok || !precedes(w, g) {
            continue;
        }
        // Earlier writes of the key that finished before `w` began, latest first.
        let mut earlier: Vec<usize> = (0..n)
            .filter(|&i| {
                let r = &records[i];
                r.op == Op::Set
                    && r.outcome == Outcome::Ok
                    && r.key.as_deref() == Some(k)
                    && precedes(r, w)
                    && unique(k, r.value.as_deref().unwrap_or(""))
            })
            .collect();
        earlier.sort_by_key(|&i| std::cmp::Reverse(end(&records[i])));
        let new_value = match kind {
            Inject::StaleRead => {
                let Some(&p) = earlier.get(usize::from(earlier.len() > 1)) else {
                    continue;
                };
                records[p].value.clone()
            }
            Inject::LostWrite => {
                // The state just before `w`: take the latest mutation of the key that
                // finished before `w` began; it must not overlap anything up to `g`.
                for r in records.iter() {
                    let touches = r.key.as_deref() == Some(k) || r.key.is_none();
                    if touches
                        && is_mutation(r)
                        && !std::ptr::eq(r, w)
                        && !precedes(r, w)
                        && !precedes(g, r)
                    {
                        continue 'scan;
                    }
                }
                let prev = records
                    .iter()
                    .filter(|r| {
                        (r.key.as_deref() == Some(k) || r.key.is_none())
                            && is_mutation(r)
                            && precedes(r, w)
                    })
                    .max_by_key(|r| end(r));
                match prev {
                    Some(r) if r.op == Op::Set => {
                        if r.outcome != Outcome::Ok || !unique(k, r.value.as_deref().unwrap_or(""))
                        {
                            continue;
                        }
                        // Every mutation before `w` must be ordered before `r`'s end,
                        // so that `r` is the state `w` overwrote.
                        if records.iter().any(|m| {
                            (m.key.as_deref() == Some(k) || m.key.is_none())
                                && is_mutation(m)
                                && precedes(m, w)
                                && !std::ptr::eq(m, r)
                                && !precedes(m, r)
                        }) {
                            continue;
                        }
                        r.value.clone()
                    }
                    Some(r) if r.outcome == Outcome::Unknown => continue,
                    _ => None,
                }
            }
        };
        found = Some((gi, new_value));
        break;
    }
    let (gi, new_value) = found?;
    let g = &mut records[gi];
    match new_value {
        Some(v) => g.value = Some(v),
        None => {
            g.value = None;
            g.outcome = Outcome::NotFound;
        }
    }
    Some(gi)
}
