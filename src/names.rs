//! Renaming the arrays of a checkpoint: regex rules, prefixes, MXNet's
//! `arg:`/`aux:` markers, and the suffixes Gluon and PyTorch give the same
//! parameters (`gamma`/`beta` of a BatchNorm are PyTorch's `weight`/`bias`;
//! Gluon 1.x's `running_mean`/`running_var`, and the `moving_mean`/
//! `moving_var` of symbolic MXNet models, are PyTorch's `running_*`).
//!
//! Structural pairing (a Gluon 1.x prefixed name with a module's attribute
//! path) needs a model and lives in the Python package.

use std::collections::{HashMap, HashSet};

use regex::Regex;

use crate::error::{Error, Result};

/// Gluon BatchNorm suffix -> PyTorch suffix.
const GLUON_TO_TORCH: [(&str, &str); 4] = [
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_var", "running_var"),
];

/// Strips MXNet's `arg:` / `aux:` marker (written by `export` and
/// `save_checkpoint`).
pub fn strip_arg_aux(name: &str) -> &str {
    name.strip_prefix("arg:")
        .or_else(|| name.strip_prefix("aux:"))
        .unwrap_or(name)
}

/// Splits a name into its owner and its last component, at the last `.` or
/// `_` (`features.0.weight` -> `features.0`, `weight`; `conv0_running_mean`
/// -> `conv0`, `running_mean`).
fn split_suffix(name: &str) -> (&str, &str) {
    for two in ["running_mean", "running_var", "moving_mean", "moving_var"] {
        if let Some(owner) = name.strip_suffix(two) {
            if let Some(o) = owner.strip_suffix(['.', '_']) {
                return (o, &name[o.len()..]);
            }
        }
    }
    match name.rfind(['.', '_']) {
        Some(i) => (&name[..i], &name[i..]),
        None => ("", name),
    }
}

/// The PyTorch spelling of a Gluon parameter name (`arg:`/`aux:` dropped,
/// BatchNorm suffixes renamed; separators kept).
pub fn gluon_to_torch(name: &str) -> String {
    let name = strip_arg_aux(name);
    let (owner, sep_suffix) = split_suffix(name);
    let (sep, suffix) = sep_suffix.split_at(sep_suffix.len().min(usize::from(!owner.is_empty())));
    for (g, t) in GLUON_TO_TORCH {
        if suffix == g {
            return format!("{owner}{sep}{t}");
        }
    }
    name.to_string()
}

/// The Gluon spelling of PyTorch names: a `weight`/`bias` whose owner also
/// has a `running_mean` is a BatchNorm's `gamma`/`beta`.
pub fn torch_to_gluon(names: &[String]) -> Vec<String> {
    let bn_owners: HashSet<&str> = names
        .iter()
        .filter_map(|n| {
            let (owner, s) = split_suffix(n);
            (s.ends_with("running_mean")).then_some(owner)
        })
        .collect();
    names
        .iter()
        .map(|n| {
            let (owner, sep_suffix) = split_suffix(n);
            if bn_owners.contains(owner) && !owner.is_empty() {
                let (sep, suffix) = sep_suffix.split_at(1);
                match suffix {
                    "weight" => return format!("{owner}{sep}gamma"),
                    "bias" => return format!("{owner}{sep}beta"),
                    _ => {}
                }
            }
            n.clone()
        })
        .collect()
}

/// Which name conventions to translate between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Convention {
    /// Keep the suffixes.
    #[default]
    Keep,
    /// Gluon -> PyTorch ([`gluon_to_torch`]).
    Torch,
    /// PyTorch -> Gluon ([`torch_to_gluon`]).
    Gluon,
}

/// A renaming: a prefix stripped, regex rules applied in order, the
/// convention, then a prefix added.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    regex: Vec<(Regex, String)>,
    strip_prefix: Option<String>,
    add_prefix: Option<String>,
    convention: Convention,
}

impl Rules {
    /// Rules from `PATTERN=REPLACEMENT` strings (regex syntax, `$1` for
    /// groups; the first unescaped `=` separates them), prefixes and a
    /// convention.
    pub fn new(
        rules: &[String],
        strip_prefix: Option<String>,
        add_prefix: Option<String>,
        convention: Convention,
    ) -> Result<Rules> {
        let regex = rules
            .iter()
            .map(|r| {
                let (pat, rep) = r.split_once('=').ok_or_else(|| {
                    Error::invalid(format!("rename rule {r:?} is not PATTERN=REPLACEMENT"))
                })?;
                let re = Regex::new(&format!("^(?:{pat})$"))
                    .map_err(|e| Error::invalid(format!("rename rule {r:?}: {e}")))?;
                Ok((re, rep.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Rules {
            regex,
            strip_prefix,
            add_prefix,
            convention,
        })
    }

    /// Whether the rules change nothing.
    pub fn is_identity(&self) -> bool {
        self.regex.is_empty()
            && self.strip_prefix.is_none()
            && self.add_prefix.is_none()
            && self.convention == Convention::Keep
    }

    /// The new names, checked: a prefix to strip must be on every name, and
    /// no two names may become one.
    pub fn apply(&self, names: &[String]) -> Result<Vec<String>> {
        let mut out: Vec<String> = names
            .iter()
            .map(|n| {
                let mut n = n.clone();
                if let Some(p) = &self.strip_prefix {
                    n = n
                        .strip_prefix(p.as_str())
                        .map(str::to_string)
                        .ok_or_else(|| {
                            Error::PrefixMismatch(format!(
                                "prefix {p:?} is not at the start of name {n:?}"
                            ))
                        })?;
                }
                for (re, rep) in &self.regex {
                    n = re.replace(&n, rep.as_str()).into_owned();
                }
                Ok(n)
            })
            .collect::<Result<Vec<_>>>()?;
        out = match self.convention {
            Convention::Keep => out,
            Convention::Torch => out.iter().map(|n| gluon_to_torch(n)).collect(),
            Convention::Gluon => torch_to_gluon(&out),
        };
        if let Some(p) = &self.add_prefix {
            out = out.into_iter().map(|n| format!("{p}{n}")).collect();
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, n) in out.iter().enumerate() {
            if let Some(&j) = seen.get(n.as_str()) {
                return Err(Error::invalid(format!(
                    "name collision after renaming: {:?} and {:?} both become {n:?}",
                    names[j], names[i]
                )));
            }
            seen.insert(n, i);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn gluon_and_torch_suffixes() {
        assert_eq!(gluon_to_torch("features.1.gamma"), "features.1.weight");
        assert_eq!(gluon_to_torch("aux:bn0_moving_var"), "bn0_running_var");
        assert_eq!(gluon_to_torch("arg:conv0_weight"), "conv0_weight");
        assert_eq!(
            gluon_to_torch("features.1.running_mean"),
            "features.1.running_mean"
        );
        let t = s(&[
            "bn.weight",
            "bn.bias",
            "bn.running_mean",
            "fc.weight",
            "fc.bias",
        ]);
        assert_eq!(
            torch_to_gluon(&t),
            s(&[
                "bn.gamma",
                "bn.beta",
                "bn.running_mean",
                "fc.weight",
                "fc.bias"
            ])
        );
    }

    #[test]
    fn rules_apply_in_order_and_refuse_collisions() {
        let r = Rules::new(
            &["features\\.(\\d+)\\.(.*)=f$1.$2".to_string()],
            Some("net_".into()),
            Some("m.".into()),
            Convention::Torch,
        )
        .expect("rules");
        assert_eq!(
            r.apply(&s(&["net_features.3.gamma"])).expect("apply"),
            s(&["m.f3.weight"])
        );
        assert!(r.apply(&s(&["features.3.gamma"])).is_err());
        let c = Rules::new(&["a|b=c".to_string()], None, None, Convention::Keep).expect("rules");
        let e = c.apply(&s(&["a", "b"])).expect_err("collision");
        assert!(e.to_string().contains("both become \"c\""), "{e}");
    }
}
