//! `clobber-store`: the command-line face of the reference store.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clobber_store::{Error, ErrorKind, KdfParams, Key, KeySource, Protocol, Store, StoreOptions};
use zeroize::Zeroizing;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  secret not found (\"secret not found: NAME\")
  2  usage error (bad flags, empty name or value, a value over 1 MiB, missing
     store path or key)
  3  lock busy: another process held the lock for the whole wait
  4  wrong passphrase or key
  5  store file damaged: tampered, truncated, unknown version, not a store, or
     KDF parameters out of bounds (memory > 1 GiB, passes > 16, lanes > 16)
  6  I/O error (the message names the file and the operation)
  7  init: a store already exists at that path

Environment:
  CLOBBER_STORE_PATH             store file (same as --store)
  CLOBBER_STORE_PASSPHRASE       passphrase (secrets never go on the command line)
  CLOBBER_STORE_KEY_FILE         32-byte raw or 64-hex-digit key file (same as --key-file)
  CLOBBER_STORE_LOCK_TIMEOUT_MS  lock wait in milliseconds (same as --lock-timeout-ms)
  CLOBBER_STORE_UNSAFE_PROTOCOL  run a FAULTY protocol (same as --unsafe-protocol)
  CLOBBER_STORE_TEST_BARRIER     test-only pause point: <step>:<parties>:<timeout-ms>:<dir>";

/// A minimal, correct encrypted secret store: AES-256-GCM, Argon2id, an exclusive
/// lock held across every read-modify-write, and crash-safe atomic replace.
#[derive(Parser, Debug)]
#[command(name = "clobber-store", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// The store file. Its lock file is the same path plus ".lock". A symbolic
    /// link is followed: the store is the file it names, replaced in that file's
    /// directory (the link stays a link).
    #[arg(
        long = "store",
        env = "CLOBBER_STORE_PATH",
        global = true,
        value_name = "PATH"
    )]
    store: Option<PathBuf>,

    /// Use a raw key file (32 bytes, or 64 hex digits) instead of a passphrase. The
    /// passphrase is only ever read from CLOBBER_STORE_PASSPHRASE, never from argv.
    #[arg(
        long,
        env = "CLOBBER_STORE_KEY_FILE",
        global = true,
        value_name = "PATH"
    )]
    key_file: Option<PathBuf>,

    /// How long a write waits for the lock before failing with exit code 3.
    #[arg(
        long,
        env = "CLOBBER_STORE_LOCK_TIMEOUT_MS",
        global = true,
        default_value_t = 5000,
        value_name = "MS"
    )]
    lock_timeout_ms: u64,

    /// UNSAFE, for testing checkers only: run a faulty protocol that reproduces a
    /// known lost-write bug. One of: stale-snapshot, no-lock, in-place, unlink-lock,
    /// lock-data-file, unlink-lock-polling, no-fsync, no-dir-fsync (the last two lose
    /// writes only on a power loss).
    #[arg(
        long,
        env = "CLOBBER_STORE_UNSAFE_PROTOCOL",
        global = true,
        value_name = "NAME"
    )]
    unsafe_protocol: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an empty store (fails with exit code 7 if one exists).
    Init {
        /// Argon2id memory cost in KiB for the new store (default 19456 = 19 MiB).
        #[arg(long, default_value_t = KdfParams::DEFAULT.memory_kib)]
        kdf_memory_kib: u32,
        /// Argon2id passes over memory for the new store.
        #[arg(long, default_value_t = KdfParams::DEFAULT.iterations)]
        kdf_iterations: u32,
        /// Argon2id lanes for the new store.
        #[arg(long, default_value_t = KdfParams::DEFAULT.parallelism)]
        kdf_parallelism: u32,
    },
    /// Set NAME to the value read from standard input (one trailing newline is
    /// trimmed). Creates the store with default KDF cost if it does not exist.
    Set {
        /// The secret's name.
        name: String,
        /// Refused: the value comes from standard input, never from argv.
        #[arg(hide = true)]
        value: Option<String>,
    },
    /// Print NAME's value followed by a newline; exit 1 if it is not set.
    Get {
        /// The secret's name.
        name: String,
    },
    /// Remove NAME; exit 1 if it was not set.
    Delete {
        /// The secret's name.
        name: String,
    },
    /// Print every secret name, one per line, sorted.
    List,
    /// Remove every secret.
    Clear,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("clobber-store: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::Invalid { .. } | ErrorKind::BadKeyFile { .. } => 2,
            ErrorKind::LockTimeout { .. } => 3,
            ErrorKind::WrongKey => 4,
            ErrorKind::Tampered
            | ErrorKind::Truncated { .. }
            | ErrorKind::UnknownVersion { .. }
            | ErrorKind::Corrupt { .. } => 5,
            ErrorKind::AlreadyExists => 7,
            _ => 6,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn key_source(global: &Global) -> Result<KeySource, Failure> {
    let pass = std::env::var("CLOBBER_STORE_PASSPHRASE")
        .ok()
        .map(Zeroizing::new);
    match (&global.key_file, pass) {
        (Some(_), Some(_)) => Err(usage(
            "both a key file and CLOBBER_STORE_PASSPHRASE are set; choose one",
        )),
        (Some(path), None) => Ok(KeySource::Raw(Key::from_file(path)?)),
        (None, Some(p)) if p.is_empty() => Err(usage("CLOBBER_STORE_PASSPHRASE is empty")),
        (None, Some(p)) => Ok(KeySource::Passphrase(p)),
        (None, None) => Err(usage(
            "no key: set CLOBBER_STORE_PASSPHRASE or pass --key-file (CLOBBER_STORE_KEY_FILE)",
        )),
    }
}

fn read_value(name: &str) -> Result<Zeroizing<String>, Failure> {
    let mut raw = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| Failure {
            code: 6,
            message: format!("reading the value of {name:?} from standard input: {e}"),
        })?;
    if raw.last() == Some(&b'\n') {
        raw.pop();
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
    }
    let value = std::str::from_utf8(&raw).map_err(|_| {
        usage(format!(
            "the value of {name:?} on standard input is not UTF-8"
        ))
    })?;
    Ok(Zeroizing::new(value.to_owned()))
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let Command::Set {
        name,
        value: Some(_),
    } = &cli.command
    {
        return Err(usage(format!(
            "set takes the value on standard input, not as an argument (argv is visible \
             to every process): printf '%s' VALUE | clobber-store set {name}"
        )));
    }
    let global = &cli.global;
    let path = global
        .store
        .clone()
        .ok_or_else(|| usage("no store path: pass --store PATH or set CLOBBER_STORE_PATH"))?;
    let protocol = match &global.unsafe_protocol {
        None => Protocol::Correct,
        Some(name) if name.is_empty() => Protocol::Correct,
        Some(name) => {
            let p: Protocol = name.parse()?;
            if p.is_faulty() {
                eprintln!(
                    "clobber-store: WARNING: running the UNSAFE protocol '{p}', which {}. \
                     It loses or corrupts data by design; use it only to test checkers.",
                    p.flaw()
                );
            }
            p
        }
    };
    // Reading a store whose directory does not exist is a wrong path, not an empty
    // store: say so rather than "secret not found".
    if !matches!(cli.command, Command::Init { .. } | Command::Set { .. })
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Failure {
            code: 6,
            message: format!(
                "the store {} does not exist (no directory {})",
                path.display(),
                dir.display()
            ),
        });
    }
    let key = key_source(global)?;
    let mut options = StoreOptions::new(path, key)
        .protocol(protocol)
        .lock_wait(Duration::from_millis(global.lock_timeout_ms))
        .test_barrier_from_env(true);
    if let Command::Init {
        kdf_memory_kib,
        kdf_iterations,
        kdf_parallelism,
    } = &cli.command
    {
        let params = KdfParams {
            memory_kib: *kdf_memory_kib,
            iterations: *kdf_iterations,
            parallelism: *kdf_parallelism,
        };
        params.validate()?;
        options = options.new_store_params(params);
    }
    let mut store: Store = options.open()?;
    let mut out = std::io::stdout().lock();
    let missing = !store.path().exists();
    let not_found = |name: &str| Failure {
        code: 1,
        message: if missing {
            format!("secret not found: {name} (the store does not exist yet)")
        } else {
            format!("secret not found: {name}")
        },
    };
    match &cli.command {
        Command::Init { .. } => store.init()?,
        Command::Set { name, .. } => {
            let value = read_value(name)?;
            store.set(name, &value)?;
        }
        Command::Get { name } => {
            let value = store.get(name)?.ok_or_else(|| not_found(name))?;
            let mut line = Zeroizing::new(Vec::with_capacity(value.len() + 1));
            line.extend_from_slice(value.as_bytes());
            line.push(b'\n');
            write_out(&mut out, &line)?;
        }
        Command::Delete { name } => {
            if !store.delete(name)? {
                return Err(not_found(name));
            }
        }
        Command::List => {
            let mut text = String::new();
            for name in store.list()? {
                text.push_str(&name);
                text.push('\n');
            }
            write_out(&mut out, text.as_bytes())?;
        }
        Command::Clear => {
            store.clear()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_out(out: &mut impl Write, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure {
            code: 6,
            message: format!("writing to standard output: {e}"),
        })
}
