//! The `mxparams` command: `inspect`, `convert`, `diff` and `verify`.
//!
//! Written once here; the Rust binary (`src/bin/mxparams.rs`) and the Python
//! console script both call [`run`]. Formats the core does not know (PyTorch
//! files, numpy `.npz`/`.npy` output, `-symbol.json` graphs) go to a
//! [`Hooks`] implementation, which the Python package provides.
//!
//! Exit status: 0 success (for `diff`: equal within tolerance), 1 `diff`
//! found differences, 2 error (one line on stderr).

mod render;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::dtype::DType;
use crate::format::{self, safetensors, Loaded, RecordVersion, SaveOptions};
use crate::inspect;
use crate::names::{Convention, Rules};
use crate::ndarray::{NDArray, SType};

/// Reads and writes what the core cannot; `None` means "not handled here".
pub trait Hooks {
    /// Reads a file of `format` (`torch`, ...).
    fn read(&self, path: &Path, format: &str) -> Option<Result<Loaded, String>>;
    /// Writes `arrays` under `names` as `format` (`torch`, `npz`, `npy`),
    /// atomically.
    fn write(
        &self,
        path: &Path,
        format: &str,
        names: &[String],
        arrays: &[NDArray],
    ) -> Option<Result<(), String>>;
    /// The text (or JSON) `inspect` prints for a `-symbol.json` graph.
    fn symbol(&self, path: &Path, json: bool) -> Option<Result<String, String>>;
    /// Exports the model of a `-symbol.json` graph and its `.params` file to
    /// `dst` (with the example input shapes, one per input); returns the
    /// line `convert` prints.
    fn export_model(
        &self,
        symbol: &Path,
        params: &Path,
        dst: &Path,
        input_shapes: &[Vec<usize>],
    ) -> Option<Result<String, String>>;
}

/// The hooks of the Rust binary: none.
pub struct NoHooks;

impl Hooks for NoHooks {
    fn read(&self, _: &Path, _: &str) -> Option<Result<Loaded, String>> {
        None
    }
    fn write(&self, _: &Path, _: &str, _: &[String], _: &[NDArray]) -> Option<Result<(), String>> {
        None
    }
    fn symbol(&self, _: &Path, _: bool) -> Option<Result<String, String>> {
        None
    }
    fn export_model(
        &self,
        _: &Path,
        _: &Path,
        _: &Path,
        _: &[Vec<usize>],
    ) -> Option<Result<String, String>> {
        None
    }
}

#[derive(Parser)]
#[command(
    name = "mxparams",
    version,
    about = "Inspect, convert, compare and verify MXNet checkpoints (.params, .npz, .npy, .safetensors, PyTorch)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The table of arrays: name, shape, dtype, storage type, bytes, offset.
    Inspect {
        /// The file.
        file: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Add min, max, mean, std and NaN/Inf counts (reads the data).
        #[arg(long)]
        stats: bool,
    },
    /// Convert between formats (chosen by extension or --format); the result
    /// is read back and compared with what was written. With --to, export a
    /// model instead: `convert NAME-symbol.json [NAME-0000.params] --to model.pt`.
    #[command(group = clap::ArgGroup::new("arrays").multiple(true).conflicts_with("to"))]
    Convert {
        /// Source file (with --to: the model's -symbol.json).
        src: PathBuf,
        /// Destination file, written atomically (with --to: the model's .params
        /// file; default NAME-NNNN.params at --epoch beside the symbol file).
        #[arg(required_unless_present = "to")]
        dst: Option<PathBuf>,
        /// Export the model as a torch.export program at PATH, with PATH's
        /// .safetensors (weights, torch names) and .py (module code) beside it.
        #[arg(long, value_name = "PATH", requires = "input_shape")]
        to: Option<PathBuf>,
        /// With --to and no params file: the epoch of NAME-NNNN.params.
        #[arg(long, requires = "to", conflicts_with = "dst")]
        epoch: Option<u32>,
        /// With --to: the example input's shape, e.g. 1,3,224,224 (one per
        /// input, repeatable); the batch dimension stays dynamic where it can.
        #[arg(long = "input-shape", value_name = "SHAPE", requires = "to")]
        input_shape: Vec<String>,
        /// Destination format: params, safetensors, npz, npy, torch.
        #[arg(long, group = "arrays")]
        format: Option<String>,
        /// Cast floating-point arrays to this dtype (integers and bool are kept).
        #[arg(long, group = "arrays")]
        dtype: Option<String>,
        /// Rename rule PATTERN=REPLACEMENT (regex over the whole name; repeatable).
        #[arg(long = "names", value_name = "RULE", group = "arrays")]
        names: Vec<String>,
        /// Remove this prefix from every name (each must have it).
        #[arg(long, group = "arrays")]
        strip_prefix: Option<String>,
        /// Add this prefix to every name.
        #[arg(long, group = "arrays")]
        add_prefix: Option<String>,
        /// Gluon -> PyTorch names: drop arg:/aux:, gamma/beta -> weight/bias.
        #[arg(long, conflicts_with = "gluon_names", group = "arrays")]
        torch_names: bool,
        /// PyTorch -> Gluon names: a BatchNorm's weight/bias -> gamma/beta.
        #[arg(long, group = "arrays")]
        gluon_names: bool,
    },
    /// Compare two files (any formats): exit 0 when equal within tolerance, 1 if not.
    Diff {
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
        /// Relative tolerance.
        #[arg(long, default_value_t = 1e-5)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = 1e-8)]
        atol: f64,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Check a file's whole structure and report NaN/Inf values.
    Verify {
        /// The file.
        file: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// A command failure: its one-line message.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type Outcome = std::result::Result<i32, Failure>;

/// Runs the command line `args` (without the program name) and returns the
/// exit status. Output goes to stdout, errors and notes to stderr.
pub fn run<I, T>(args: I, hooks: &dyn Hooks) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv = std::iter::once(OsString::from("mxparams")).chain(args.into_iter().map(Into::into));
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Inspect { file, json, stats } => cmd_inspect(&file, json, stats, hooks),
        Command::Convert {
            src,
            dst,
            to: Some(to),
            epoch,
            input_shape,
            ..
        } => cmd_export(&src, dst, epoch, &input_shape, &to, hooks),
        Command::Convert {
            src,
            dst: Some(dst),
            format,
            dtype,
            names,
            strip_prefix,
            add_prefix,
            torch_names,
            gluon_names,
            ..
        } => {
            let convention = if torch_names {
                Convention::Torch
            } else if gluon_names {
                Convention::Gluon
            } else {
                Convention::Keep
            };
            Rules::new(&names, strip_prefix, add_prefix, convention)
                .map_err(Failure::from)
                .and_then(|rules| {
                    cmd_convert(
                        &src,
                        &dst,
                        format.as_deref(),
                        dtype.as_deref(),
                        &rules,
                        hooks,
                    )
                })
        }
        // clap requires DST unless --to is given.
        Command::Convert { dst: None, .. } => Err(Failure("convert needs SRC and DST".into())),
        Command::Diff {
            a,
            b,
            rtol,
            atol,
            json,
        } => cmd_diff(&a, &b, rtol, atol, json, hooks),
        Command::Verify { file, json } => cmd_verify(&file, json),
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => code,
        Err(Failure(msg)) => {
            // One line, even for a hook's multi-line message.
            let msg: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("mxparams: error: {}", msg.join("; "));
            2
        }
    }
}

fn out(text: &str) -> Outcome {
    let mut o = std::io::stdout().lock();
    // A closed pipe (`mxparams inspect f | head`) is not an error.
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure(e.to_string())),
        _ => Ok(0),
    }
}

fn note(text: &str) {
    eprintln!("mxparams: {text}");
}

/// A progress bar on a terminal, nothing when stderr is piped.
fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() || len < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

fn is_symbol(path: &Path) -> bool {
    path.to_string_lossy().ends_with("-symbol.json")
}

fn symbol_hook(path: &Path, json: bool, hooks: &dyn Hooks) -> Outcome {
    match hooks.symbol(path, json) {
        Some(Ok(text)) => out(&text),
        Some(Err(e)) => Err(Failure(e)),
        None => Err(Failure(format!(
            "{}: reading a symbol graph's operators needs the Python package with torch \
             (pip install mxparams[torch]; then `mxparams inspect` or `python -m mxparams`)",
            path.display()
        ))),
    }
}

fn cmd_inspect(path: &Path, json: bool, stats: bool, hooks: &dyn Hooks) -> Outcome {
    if is_symbol(path) {
        return symbol_hook(path, json, hooks);
    }
    let info = if let Some(kind) = hook_format(path) {
        let loaded = read(path, hooks)?;
        let mut i = inspect::FileInfo {
            format: kind.into(),
            version: None,
            named: loaded.names.is_some(),
            arrays: Vec::new(),
            metadata: None,
            warnings: Vec::new(),
        };
        for (n, a) in inspect::names_of(&loaded).into_iter().zip(&loaded.arrays) {
            i.arrays.push(inspect::ArrayInfo {
                name: n,
                shape: a.shape().to_vec(),
                dtype: a.dtype(),
                stype: a.stype(),
                nbytes: inspect::stored_bytes(a),
                offset: None,
            });
        }
        i
    } else {
        inspect::inspect(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?
    };
    let stats = if stats {
        let loaded = read(path, hooks)?;
        let bar = progress(loaded.arrays.len(), "stats");
        let s = inspect::stats_all(&loaded.arrays, &|| bar.inc(1))?;
        bar.finish_and_clear();
        Some(s)
    } else {
        None
    };
    let text = if json {
        render::inspect_json(&info, stats.as_deref())
    } else {
        render::inspect_table(path, &info, stats.as_deref())
    };
    out(&text)
}

/// The format the hooks handle for a path, by extension.
fn hook_format(path: &Path) -> Option<&'static str> {
    match ext(path).as_str() {
        "pt" | "pth" | "bin" => Some("torch"),
        _ => None,
    }
}

fn ext(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads any file: the core's formats zero-copy, others through the hooks.
fn read(path: &Path, hooks: &dyn Hooks) -> std::result::Result<Loaded, Failure> {
    if is_symbol(path) {
        return Err(Failure(format!(
            "{}: a symbol graph holds no arrays; give its -NNNN.params file",
            path.display()
        )));
    }
    if let Some(kind) = hook_format(path) {
        return match hooks.read(path, kind) {
            Some(r) => r.map_err(|e| Failure(format!("{}: {e}", path.display()))),
            None => Err(Failure(format!(
                "{}: reading {kind} files needs the Python package (pip install mxparams[torch])",
                path.display()
            ))),
        };
    }
    format::load_mmap(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

/// The destination format: `--format`, else the extension.
fn target_format(dst: &Path, given: Option<&str>) -> std::result::Result<&'static str, Failure> {
    let f = given.map_or_else(|| ext(dst), str::to_ascii_lowercase);
    Ok(match f.as_str() {
        "params" => "params",
        "safetensors" => "safetensors",
        "npz" => "npz",
        "npy" => "npy",
        "pt" | "pth" | "torch" => "torch",
        other => {
            return Err(Failure(format!(
                "cannot tell the output format of {} ({other:?}): use --format params|safetensors|npz|npy|torch",
                dst.display()
            )))
        }
    })
}

fn cmd_convert(
    src: &Path,
    dst: &Path,
    format_arg: Option<&str>,
    dtype: Option<&str>,
    rules: &Rules,
    hooks: &dyn Hooks,
) -> Outcome {
    let target = target_format(dst, format_arg)?;
    let dtype: Option<DType> = dtype.map(str::parse).transpose()?;
    let loaded = read(src, hooks)?;
    let list = loaded.names.is_none();
    let names = rules.apply(&inspect::names_of(&loaded))?;
    let mut arrays = loaded.arrays;
    if let Some(d) = dtype {
        for a in arrays
            .iter_mut()
            .filter(|a| a.dtype().is_float() && a.dtype() != d)
        {
            *a = crate::convert::cast(a, d)?;
        }
    }
    // Formats without sparse storage get dense arrays, and the user is told.
    if target != "params" {
        let sparse: Vec<&str> = names
            .iter()
            .zip(&arrays)
            .filter(|(_, a)| a.stype() != SType::Default)
            .map(|(n, _)| n.as_str())
            .collect();
        if !sparse.is_empty() {
            note(&format!(
                "{target} has no sparse storage: {} array(s) written dense: {}",
                sparse.len(),
                sparse.join(", ")
            ));
            for a in arrays.iter_mut().filter(|a| a.stype() != SType::Default) {
                *a = crate::sparse::to_dense(a)?;
            }
        }
    }
    if target == "npy" && arrays.len() != 1 {
        return Err(Failure(format!(
            "an .npy file holds one array; {} has {}",
            src.display(),
            arrays.len()
        )));
    }
    let refs: Vec<&NDArray> = arrays.iter().collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    match target {
        "params" => {
            let n = (!list || !rules.is_identity()).then_some(&name_refs[..]);
            let opts = SaveOptions {
                version: RecordVersion::Auto,
                fsync: false,
            };
            format::save(dst, n, &refs, &opts)?;
        }
        "safetensors" => {
            let meta = if ext(src) == "safetensors" {
                safetensors::read_metadata(src)?
            } else {
                None
            };
            safetensors::save(dst, &name_refs, &refs, meta.as_ref(), false)?;
        }
        other => match hooks.write(dst, other, &names, &arrays) {
            Some(r) => r.map_err(|e| Failure(format!("{}: {e}", dst.display())))?,
            None => {
                return Err(Failure(format!(
                    "writing {other} files needs the Python package (the `mxparams` console script)"
                )))
            }
        },
    }
    // Read the result back and compare every tensor bit for bit.
    let back = read(dst, hooks)?;
    // A file without names (an .npy, a list .params) is compared by position.
    let back = match back.names {
        Some(_) => back,
        None if back.arrays.len() == names.len() => Loaded {
            names: Some(names.clone()),
            arrays: back.arrays,
        },
        None => Loaded {
            names: Some(inspect::names_of(&back)),
            arrays: back.arrays,
        },
    };
    let written = Loaded {
        names: Some(names),
        arrays,
    };
    let bar = progress(written.arrays.len(), "verify");
    let report = inspect::diff(&written, &back, 0.0, 0.0, &|| bar.inc(1))?;
    bar.finish_and_clear();
    if !report.equal() {
        let bad: Vec<&str> = report
            .common
            .iter()
            .filter(|d| !d.equal)
            .map(|d| d.name.as_str())
            .chain(report.only_a.iter().map(String::as_str))
            .chain(report.only_b.iter().map(String::as_str))
            .take(5)
            .collect();
        return Err(Failure(format!(
            "{} does not read back as written (first differences: {})",
            dst.display(),
            bad.join(", ")
        )));
    }
    let bytes: usize = written.arrays.iter().map(inspect::stored_bytes).sum();
    out(&format!(
        "{} -> {} ({target}): {} arrays, {}, read back and identical\n",
        src.display(),
        dst.display(),
        written.arrays.len(),
        render::human_bytes(bytes as u64)
    ))
}

/// `convert NAME-symbol.json [PARAMS] --to DST`: the model, exported by the hooks.
fn cmd_export(
    symbol: &Path,
    params: Option<PathBuf>,
    epoch: Option<u32>,
    input_shapes: &[String],
    dst: &Path,
    hooks: &dyn Hooks,
) -> Outcome {
    let Some(prefix) = symbol.to_str().and_then(|s| s.strip_suffix("-symbol.json")) else {
        return Err(Failure(format!(
            "{}: --to exports a model: SRC must be its NAME-symbol.json file",
            symbol.display()
        )));
    };
    let params = params
        .unwrap_or_else(|| PathBuf::from(format!("{prefix}-{:04}.params", epoch.unwrap_or(0))));
    let shapes = input_shapes
        .iter()
        .map(|s| parse_shape(s))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    match hooks.export_model(symbol, &params, dst, &shapes) {
        Some(Ok(text)) => out(&text),
        Some(Err(e)) => Err(Failure(e)),
        None => Err(Failure(format!(
            "{}: exporting a model needs the Python package with torch \
             (pip install mxparams[torch]; then `mxparams convert` or `python -m mxparams`)",
            symbol.display()
        ))),
    }
}

/// `1,3,224,224` -> `[1, 3, 224, 224]`.
fn parse_shape(text: &str) -> std::result::Result<Vec<usize>, Failure> {
    text.split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            Failure(format!(
                "--input-shape {text:?}: expected sizes separated by commas, e.g. 1,3,224,224"
            ))
        })
}

fn cmd_diff(a: &Path, b: &Path, rtol: f64, atol: f64, json: bool, hooks: &dyn Hooks) -> Outcome {
    let la = read(a, hooks)?;
    let lb = read(b, hooks)?;
    let bar = progress(la.arrays.len(), "diff");
    let report = inspect::diff(&la, &lb, rtol, atol, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let text = if json {
        render::diff_json(&report, rtol, atol)
    } else {
        render::diff_text(&report, rtol, atol)
    };
    out(&text)?;
    Ok(if report.equal() { 0 } else { 1 })
}

fn cmd_verify(path: &Path, json: bool) -> Outcome {
    let n = inspect::inspect(path).map_or(0, |i| i.arrays.len());
    let bar = progress(n, "verify");
    let v = inspect::verify(path, &|| bar.inc(1))
        .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    bar.finish_and_clear();
    out(&if json {
        render::verify_json(&v)
    } else {
        render::verify_text(path, &v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_error(args: &[&str]) -> String {
        let shapes: Vec<String> = args.iter().map(ToString::to_string).collect();
        match cmd_export(
            Path::new("m-symbol.json"),
            None,
            None,
            &shapes,
            Path::new("m.pt"),
            &NoHooks,
        ) {
            Err(Failure(msg)) => msg,
            Ok(code) => panic!("exported without hooks (status {code})"),
        }
    }

    #[test]
    fn export_without_hooks_says_it_needs_python_with_torch() {
        let msg = export_error(&["1,3,224,224"]);
        assert!(msg.contains("needs the Python package with torch"), "{msg}");
        assert!(!msg.contains('\n'));
        assert_eq!(
            run(
                [
                    "convert",
                    "m-symbol.json",
                    "--to",
                    "m.pt",
                    "--input-shape",
                    "1,3"
                ],
                &NoHooks
            ),
            2
        );
    }

    #[test]
    fn export_checks_its_arguments() {
        assert!(export_error(&["1,x"]).contains("--input-shape \"1,x\""));
        let Err(Failure(msg)) = cmd_export(
            Path::new("m.json"),
            None,
            None,
            &[],
            Path::new("m.pt"),
            &NoHooks,
        ) else {
            panic!("accepted a symbol path without -symbol.json")
        };
        assert!(msg.contains("NAME-symbol.json"), "{msg}");
        assert_eq!(parse_shape("2, 3").ok(), Some(vec![2, 3]));
        // --to needs --input-shape; array options do not go with --to.
        assert_eq!(
            run(["convert", "m-symbol.json", "--to", "m.pt"], &NoHooks),
            2
        );
        let with_dtype = [
            "convert",
            "m-symbol.json",
            "--to",
            "m.pt",
            "--input-shape",
            "1",
            "--dtype",
            "float16",
        ];
        assert_eq!(run(with_dtype, &NoHooks), 2);
    }
}
