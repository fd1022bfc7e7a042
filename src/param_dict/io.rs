//! `ParameterDict` save and load: one reduced copy per parameter written with
//! the `.params` writer, and Gluon's load policies (`arg:`/`aux:` stripping,
//! `restore_prefix`, missing/extra checks before anything changes, dtype casts).

use std::borrow::Cow;
use std::path::Path;

use super::{read, write, DictEntry, ParameterDict};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::format;
use crate::ndarray::NDArray;
use crate::parameter::DTypeSource;

/// Where the naming rules of this package are explained.
const NAMING_DOC: &str = "ParameterDict.save and ParameterDict.load in docs/api.md";

/// Options of [`ParameterDict::load`], with Gluon's defaults.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Contexts for parameters initialised by the load (default `cpu(0)`).
    pub ctx: Option<Vec<Context>>,
    /// Skip parameters missing from the file instead of failing.
    pub allow_missing: bool,
    /// Ignore file entries no parameter asks for instead of failing.
    pub ignore_extra: bool,
    /// Prepended to the file's names before matching.
    pub restore_prefix: String,
    /// Convert dtypes that differ instead of failing.
    pub cast_dtype: bool,
    /// Which side's dtype wins when casting.
    pub dtype_source: DTypeSource,
}

/// MXNet's `_brief_print_list`: at most 7 quoted names, eliding the middle.
pub fn brief_list<S: AsRef<str>>(names: &[S]) -> String {
    const LIMIT: usize = 7;
    let quote = |s: &[S]| {
        s.iter()
            .map(|n| format!("'{}'", n.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.len() > LIMIT {
        // Python's lst[:7//2] and lst[-7//2:] (= lst[-4:]).
        let head = &names[..LIMIT / 2];
        let tail = &names[names.len() - LIMIT.div_ceil(2)..];
        format!("{}, ..., {}", quote(head), quote(tail))
    } else {
        quote(names)
    }
}

impl<E: DictEntry> ParameterDict<E> {
    /// Names (with `strip_prefix` removed) and one reduced host copy per parameter.
    pub fn reduced(&self, strip_prefix: &str) -> Result<(Vec<String>, Vec<NDArray>)> {
        let mut names = Vec::with_capacity(self.len());
        let mut arrays = Vec::with_capacity(self.len());
        for p in self.parameters() {
            let p = read(p);
            // One host copy is written as it is (the writer reads it under its
            // storage lock); several are averaged into a new array.
            let value = match p.list_data() {
                Ok([one]) if one.context().is_host() && one.sparse_parts().is_none() => {
                    one.clone().with_context(Context::cpu(0))
                }
                _ => p.reduce()?,
            };
            let Some(stripped) = p.name().strip_prefix(strip_prefix) else {
                return Err(Error::PrefixMismatch(format!(
                    "Prefix '{strip_prefix}' is to be striped before saving, but Parameter's \
                     name '{name}' does not start with '{strip_prefix}'. Save without \
                     strip_prefix, or with a prefix every name starts with (see {NAMING_DOC})",
                    name = p.name()
                )));
            };
            names.push(stripped.to_string());
            arrays.push(value);
        }
        Ok((names, arrays))
    }

    /// Saves one copy of each parameter (the mean over contexts) to `path`,
    /// named without `strip_prefix` (which must prefix every name).
    pub fn save(&self, path: impl AsRef<Path>, strip_prefix: &str) -> Result<()> {
        let (names, arrays) = self.reduced(strip_prefix)?;
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let array_refs: Vec<&NDArray> = arrays.iter().collect();
        format::save(
            path,
            Some(&name_refs),
            &array_refs,
            &format::SaveOptions::default(),
        )
    }

    /// Loads `path` (memory-mapped, read once) with Gluon's policies; see
    /// [`ParameterDict::load_arrays`].
    pub fn load(&self, path: impl AsRef<Path>, opts: &LoadOptions) -> Result<()> {
        let path = path.as_ref();
        self.check_restore_prefix(&opts.restore_prefix)?;
        let loaded = format::load_mmap(path)?;
        let Some(names) = loaded.names else {
            return Err(Error::invalid(format!(
                "Cannot load file: {} into a ParameterDict: it holds an unnamed list of \
                 arrays, not a dict of named parameters",
                path.display()
            )));
        };
        let source = format!("file: {}", path.display());
        // Loading onto a GPU: one batched upload from the mapped file to the
        // first GPU (parameters then take device-to-device copies).
        let gpu = opts
            .ctx
            .as_deref()
            .and_then(|c| c.iter().find(|c| c.device_type == crate::DeviceType::Gpu));
        match gpu {
            Some(&g) => {
                let staged = crate::transfer::to_context(&loaded.arrays, g)?;
                drop(loaded.arrays);
                // The staged arrays are ours alone: parameters initialised on
                // that GPU keep them instead of copying; their gradients come
                // from one zeroed arena.
                crate::cuda::with_zeroed_arena(|| {
                    self.load_arrays_from(&names, &staged, opts, &source, true)
                })
            }
            None => self.load_arrays(&names, &loaded.arrays, opts, &source),
        }
    }

    fn check_restore_prefix(&self, restore_prefix: &str) -> Result<()> {
        if restore_prefix.is_empty() {
            return Ok(());
        }
        match self.keys().find(|n| !n.starts_with(restore_prefix)) {
            None => Ok(()),
            Some(name) => Err(Error::PrefixMismatch(format!(
                "restore_prefix is '{restore_prefix}' but Parameters name '{name}' does not \
                 start with '{restore_prefix}'. See {NAMING_DOC}"
            ))),
        }
    }

    /// Gluon's `load_dict`: strips `arg:`/`aux:`, prepends `restore_prefix`,
    /// checks missing and extra names (before touching anything), then loads
    /// each array into its parameter (copied straight into existing buffers;
    /// deferred and uninitialised parameters are initialised from it).
    /// `source` names the origin in messages (`file: NAME` or `param_dict`).
    pub fn load_arrays(
        &self,
        names: &[String],
        arrays: &[NDArray],
        opts: &LoadOptions,
        source: &str,
    ) -> Result<()> {
        self.load_arrays_from(names, arrays, opts, source, false)
    }

    fn load_arrays_from(
        &self,
        names: &[String],
        arrays: &[NDArray],
        opts: &LoadOptions,
        source: &str,
        adopt: bool,
    ) -> Result<()> {
        self.check_restore_prefix(&opts.restore_prefix)?;
        let prefix = opts.restore_prefix.as_str();
        let full: Vec<Cow<'_, str>> = names
            .iter()
            .map(|k| {
                let k = k
                    .strip_prefix("arg:")
                    .or_else(|| k.strip_prefix("aux:"))
                    .unwrap_or(k);
                if prefix.is_empty() {
                    Cow::Borrowed(k)
                } else {
                    Cow::Owned(format!("{prefix}{k}"))
                }
            })
            .collect();
        // Which file entry feeds each parameter: later duplicates win, as in a
        // Python dict built from the file.
        let mut source_of: Vec<Option<usize>> = vec![None; self.len()];
        let mut first_extra = None;
        for (i, n) in full.iter().enumerate() {
            match self.params.get_index_of(n.as_ref()) {
                Some(pi) => source_of[pi] = Some(i),
                None => {
                    first_extra.get_or_insert(i);
                }
            }
        }
        let unique_file_names = || {
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<&str> = Vec::new();
            for n in &full {
                let n: &str = n.as_ref();
                if seen.insert(n) {
                    out.push(n);
                }
            }
            out
        };
        if !opts.allow_missing {
            if let Some(pi) = source_of.iter().position(Option::is_none) {
                let missing = self.params.get_index(pi).map_or("", |(k, _)| k.as_str());
                let short = missing.get(prefix.len()..).unwrap_or(missing);
                return Err(Error::missing_parameter(
                    short,
                    format!(
                        "Parameter '{}' is missing in {source}, which contains parameters: {}. \
                     Load with allow_missing=True to skip it, or with the \
                     restore_prefix the names lack (see {NAMING_DOC})",
                        missing.get(prefix.len()..).unwrap_or(missing),
                        brief_list(&unique_file_names())
                    ),
                ));
            }
        }
        if let (false, Some(i)) = (opts.ignore_extra, first_extra) {
            let extra = full[i].as_ref();
            let short = extra.get(prefix.len()..).unwrap_or(extra);
            return Err(Error::unexpected_parameter(
                short,
                format!(
                    "Parameter '{}' loaded from {source} is not present in ParameterDict, \
                 choices are: {}. Set ignore_extra to True to ignore it, or load \
                 with the restore_prefix the names lack (see {NAMING_DOC})",
                    extra.get(prefix.len()..).unwrap_or(extra),
                    brief_list(&self.keys().collect::<Vec<_>>())
                ),
            ));
        }
        // Load in the file's order of first appearance, as MXNet iterates its dict.
        let mut done = vec![false; self.len()];
        for n in &full {
            let Some(pi) = self.params.get_index_of(n.as_ref()) else {
                continue;
            };
            if std::mem::replace(&mut done[pi], true) {
                continue;
            }
            let (Some(p), Some(array)) = (
                self.params.get_index(pi).map(|(_, e)| e.parameter()),
                source_of[pi].and_then(|i| arrays.get(i)),
            ) else {
                continue;
            };
            write(p).load_init_from(
                array,
                opts.ctx.as_deref(),
                opts.cast_dtype,
                opts.dtype_source,
                adopt,
            )?;
        }
        Ok(())
    }
}
