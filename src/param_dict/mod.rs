//! `ParameterDict`: an insertion-ordered set of shared parameters with a name
//! prefix, an optional `shared` dict consulted by `get`, MXNet's attribute
//! matching, and the save/load policies of Gluon's `ParameterDict` (prefix
//! stripping and restoring, missing/extra checks, dtype casting).
//!
//! Parameters are shared objects (`Arc<RwLock<Parameter>>`): a parameter in
//! two dicts is one parameter. Bulk operations lock one parameter at a time
//! and never call out while holding a lock.

mod attrs;
mod init_batch;
mod io;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use indexmap::IndexMap;

use attrs::merge_attrs;
pub use attrs::{attribute_conflict, merge_shape, ParamAttrs};
pub use init_batch::{
    BatchOutcome, FanFactor, Fill, FillRequest, StreamCounter, StreamSource, Xavier,
};
pub use io::{brief_list, LoadOptions};

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::parameter::{GradReq, InitRequest, Parameter};

/// A parameter shared between dicts, blocks and bindings.
pub type SharedParameter = Arc<RwLock<Parameter>>;

/// Reads a shared parameter, ignoring poisoning (a panic never leaves a
/// parameter half-updated in a way later readers could not handle).
pub fn read(p: &SharedParameter) -> RwLockReadGuard<'_, Parameter> {
    p.read().unwrap_or_else(|e| e.into_inner())
}

/// Writes a shared parameter, ignoring poisoning.
pub fn write(p: &SharedParameter) -> RwLockWriteGuard<'_, Parameter> {
    p.write().unwrap_or_else(|e| e.into_inner())
}

/// What a [`ParameterDict`] maps names to: a shared parameter, or a handle
/// that owns one (a binding keeps its language's wrapper object here, so
/// that one name gives back the same wrapper every time and the dict is the
/// only name -> parameter map).
pub trait DictEntry: Clone {
    /// The parameter this entry stands for.
    fn parameter(&self) -> &SharedParameter;
}

impl DictEntry for SharedParameter {
    fn parameter(&self) -> &SharedParameter {
        self
    }
}

/// An insertion-ordered dictionary of parameters.
pub struct ParameterDict<E: DictEntry = SharedParameter> {
    prefix: String,
    params: IndexMap<String, E>,
    shared: Option<Arc<RwLock<ParameterDict<E>>>>,
}

impl<E: DictEntry> Default for ParameterDict<E> {
    fn default() -> Self {
        ParameterDict::new("", None)
    }
}

impl<E: DictEntry> std::fmt::Debug for ParameterDict<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl<E: DictEntry> std::fmt::Display for ParameterDict<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{} ", self.prefix)
        };
        let lines: Vec<String> = self
            .parameters()
            .map(|p| format!("  {}", *read(p)))
            .collect();
        write!(f, "{name}(\n{}\n)", lines.join("\n"))
    }
}

impl<E: DictEntry> ParameterDict<E> {
    /// An empty dict whose `get` prepends `prefix`, consulting `shared` first.
    pub fn new(prefix: impl Into<String>, shared: Option<Arc<RwLock<ParameterDict<E>>>>) -> Self {
        ParameterDict {
            prefix: prefix.into(),
            params: IndexMap::new(),
            shared,
        }
    }

    /// The prefix `get` prepends.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The dict `get` consults for names this one lacks.
    pub fn shared(&self) -> Option<&Arc<RwLock<ParameterDict<E>>>> {
        self.shared.as_ref()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Names in insertion order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + '_ {
        self.params.keys()
    }

    /// Entries in insertion order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &E> + '_ {
        self.params.values()
    }

    /// `(name, entry)` pairs in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &E)> + '_ {
        self.params.iter()
    }

    /// Parameters in insertion order.
    pub fn parameters(&self) -> impl ExactSizeIterator<Item = &SharedParameter> + '_ {
        self.params.values().map(DictEntry::parameter)
    }

    /// The entry at `index` in insertion order.
    pub fn get_index(&self, index: usize) -> Option<(&String, &E)> {
        self.params.get_index(index)
    }

    /// Whether `name` (full name) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    /// The entry with full name `name`.
    pub fn param(&self, name: &str) -> Option<&E> {
        self.params.get(name)
    }

    /// Inserts (or replaces) `param` under `name`, keeping the original position.
    pub fn insert(&mut self, name: impl Into<String>, param: E) {
        self.params.insert(name.into(), param);
    }

    /// Removes `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<E> {
        self.params.shift_remove(name)
    }

    /// `prefix + name`.
    pub fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The entry with full name `name`: this dict's, else the shared dict's
    /// (which is then bound here too, as Gluon's `_get_impl`).
    pub fn lookup(&mut self, name: &str) -> Option<E> {
        if let Some(p) = self.params.get(name) {
            return Some(p.clone());
        }
        let found = self.shared.as_ref().and_then(|s| {
            s.read()
                .unwrap_or_else(|e| e.into_inner())
                .param(name)
                .cloned()
        });
        if let Some(p) = &found {
            self.insert(name, p.clone());
        }
        found
    }

    /// The existing half of Gluon's `get`: the entry with full name `name`
    /// (see [`ParameterDict::lookup`]) after merging `attrs` into it (an
    /// attribute that disagrees is an `AttributeConflict`; unknown shape
    /// dims are filled in), or `None` when there is none (the caller creates it).
    pub fn get_existing(&mut self, name: &str, attrs: &ParamAttrs) -> Result<Option<E>> {
        let Some(existing) = self.lookup(name) else {
            return Ok(None);
        };
        if attrs.is_empty() {
            return Ok(Some(existing));
        }
        merge_attrs(&mut write(existing.parameter()), name, attrs)?;
        Ok(Some(existing))
    }

    /// The existing half of Gluon's `get_constant`: the entry with full name
    /// `name`, checked against `value` when given (an existing non-constant
    /// or a different value is an `AttributeConflict`); `None` when absent.
    pub fn get_constant_existing(
        &mut self,
        name: &str,
        value: Option<&NDArray>,
    ) -> Result<Option<E>> {
        let Some(existing) = self.lookup(name) else {
            return Ok(None);
        };
        if let Some(value) = value {
            let p = read(existing.parameter());
            let Some(stored) = p.constant_value() else {
                return Err(Error::AttributeConflict(format!(
                    "Parameter '{name}' already exists but it is not a constant."
                )));
            };
            let same = stored.shape() == value.shape() && {
                let a = crate::convert::cast(stored, DType::Float64)?;
                let b = crate::convert::cast(value, DType::Float64)?;
                let equal = *a.buffer().try_read()? == *b.buffer().try_read()?;
                equal
            };
            if !same {
                return Err(Error::AttributeConflict(format!(
                    "Constant '{name}' already exists but it's value doesn't match new value"
                )));
            }
        }
        Ok(Some(existing))
    }

    /// The error for `get_constant` of a missing constant without a value.
    pub fn missing_constant(name: &str) -> Error {
        Error::KeyNotFound(format!(
            "No constant named '{name}'. Please specify value if you want to create a new \
             constant."
        ))
    }

    /// Initialises every parameter on `ctxs` (Gluon's `initialize` with the
    /// initializer as a closure): `fill(name, array)` fills a zeroed host
    /// array for each parameter whose shape is known (constants copy their
    /// value instead); parameters with unknown dims and deferral allowed are
    /// deferred. Already initialised ones are skipped unless `force_reinit`;
    /// their names are returned. No lock is held while `fill` runs.
    pub fn initialize_with(
        &self,
        ctxs: &[Context],
        force_reinit: bool,
        mut fill: impl FnMut(&str, &NDArray) -> Result<()>,
    ) -> Result<Vec<String>> {
        crate::cuda::with_zeroed_arena(|| self.initialize_each(ctxs, force_reinit, &mut fill))
    }

    fn initialize_each(
        &self,
        ctxs: &[Context],
        force_reinit: bool,
        fill: &mut impl FnMut(&str, &NDArray) -> Result<()>,
    ) -> Result<Vec<String>> {
        let mut skipped = Vec::new();
        for (name, p) in &self.params {
            let p = p.parameter();
            let (state, zeros) = {
                let mut g = write(p);
                let state = g.request_init(ctxs, None, force_reinit)?;
                let zeros = match (state, g.constant_value()) {
                    (InitRequest::Ready, None) => Some(g.zeros_host()?),
                    _ => None,
                };
                (state, zeros)
            };
            match state {
                InitRequest::AlreadyInitialized => skipped.push(name.clone()),
                InitRequest::Deferred => {}
                InitRequest::Ready => match zeros {
                    Some(arr) => {
                        fill(name, &arr)?;
                        let mut g = write(p);
                        let record = g.take_deferred()?;
                        let c = record.map_or_else(|| ctxs.to_vec(), |r| r.ctx);
                        g.init_from_host(&arr, &c)?;
                    }
                    None => write(p).finish_deferred_init()?,
                },
            }
        }
        Ok(skipped)
    }

    /// Gluon's `update`: adds every parameter of `other`; a name already
    /// bound to a different parameter is an `AttributeConflict` (nothing changes).
    pub fn update(&mut self, other: &ParameterDict<E>) -> Result<()> {
        for (name, p) in &other.params {
            if let Some(mine) = self.params.get(name) {
                if !Arc::ptr_eq(mine.parameter(), p.parameter()) {
                    return Err(Error::AttributeConflict(format!(
                        "Cannot update self with other because they have different \
                         Parameters with the same name '{name}'"
                    )));
                }
            }
        }
        for (name, p) in &other.params {
            self.insert(name.clone(), p.clone());
        }
        Ok(())
    }

    /// Zeroes every gradient buffer.
    pub fn zero_grad(&self) -> Result<()> {
        for p in self.parameters() {
            read(p).zero_grad()?;
        }
        Ok(())
    }

    /// Moves every parameter to `ctxs`, keeping values. Onto GPUs the values
    /// travel in one batched upload (one device allocation, the pinned ring)
    /// and the gradients come from a zeroed arena, instead of an allocation,
    /// copy and wait each.
    pub fn reset_ctx(&self, ctxs: &[Context]) -> Result<()> {
        if !ctxs.iter().any(|c| c.device_type == crate::DeviceType::Gpu) {
            return self.parameters().try_for_each(|p| write(p).reset_ctx(ctxs));
        }
        let mut moving = Vec::new();
        let mut values = Vec::new();
        for p in self.parameters() {
            let mut g = write(p);
            match g.value_to_move()? {
                Some(v) if g.stype() == SType::Default && g.grad_stype() == SType::Default => {
                    moving.push(p);
                    values.push(v);
                }
                _ => g.reset_ctx(ctxs)?,
            }
        }
        place_batch(&moving, values, ctxs)
    }

    /// Every context any parameter lives on (each once, in first-seen order).
    pub fn list_ctx(&self) -> Result<Vec<Context>> {
        let mut out: Vec<Context> = Vec::new();
        for p in self.parameters() {
            for c in read(p).list_ctx()? {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// Sets the gradient request of every parameter.
    pub fn set_grad_req(&self, req: GradReq) -> Result<()> {
        for p in self.parameters() {
            write(p).set_grad_req(req)?;
        }
        Ok(())
    }

    /// Sets the learning-rate multiplier of every parameter.
    pub fn set_lr_mult(&self, v: f64) {
        for p in self.parameters() {
            write(p).lr_mult = v;
        }
    }

    /// Sets the weight-decay multiplier of every parameter.
    pub fn set_wd_mult(&self, v: f64) {
        for p in self.parameters() {
            write(p).wd_mult = v;
        }
    }

    /// Casts every parameter to `dtype`.
    pub fn cast(&self, dtype: DType) -> Result<()> {
        for p in self.parameters() {
            write(p).cast(dtype)?;
        }
        Ok(())
    }
}

impl ParameterDict<SharedParameter> {
    /// Gluon's `get`: the parameter `prefix + name`, from this dict, then the
    /// shared dict, else a new one with `attrs`. An existing parameter must
    /// agree with every given attribute; unknown shape dims are filled in.
    pub fn get(&mut self, name: &str, attrs: &ParamAttrs) -> Result<SharedParameter> {
        let full = self.full_name(name);
        if let Some(existing) = self.get_existing(&full, attrs)? {
            return Ok(existing);
        }
        let shared = Arc::new(RwLock::new(Parameter::from_attrs(full.clone(), attrs)));
        self.insert(full, shared.clone());
        Ok(shared)
    }

    /// Gluon's `get_constant`: the constant `prefix + name` (from this dict or
    /// the shared one), created from `value` when absent. Without a value a
    /// missing constant is `KeyNotFound`; an existing non-constant or a
    /// different value is an `AttributeConflict`.
    pub fn get_constant(&mut self, name: &str, value: Option<&NDArray>) -> Result<SharedParameter> {
        let full = self.full_name(name);
        if let Some(existing) = self.get_constant_existing(&full, value)? {
            return Ok(existing);
        }
        let value = value.ok_or_else(|| Self::missing_constant(&full))?;
        let p = Parameter::new_constant(full.clone(), value.copy_to(Context::cpu(0))?);
        let shared = Arc::new(RwLock::new(p));
        self.insert(full, shared.clone());
        Ok(shared)
    }
}

/// Gives each of `params` its value from `values` (same order, host
/// arrays with the parameter's shape and dtype) on `ctxs`: GPU contexts get
/// them in one batched upload (one device allocation, the pinned ring) and
/// the gradients from a zeroed arena, instead of an allocation, copy and wait
/// per parameter.
pub(crate) fn place_batch(
    params: &[&SharedParameter],
    values: Vec<NDArray>,
    ctxs: &[Context],
) -> Result<()> {
    crate::cuda::with_zeroed_arena(|| {
        let placed = crate::transfer::to_contexts(&values, ctxs)?;
        drop(values);
        for (k, p) in params.iter().enumerate() {
            let copies = placed.iter().map(|per_ctx| per_ctx[k].clone()).collect();
            write(p).adopt_copies(ctxs, copies)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_list_elides_like_mxnet() {
        let names: Vec<String> = (0..9).map(|i| format!("p{i}")).collect();
        assert_eq!(
            brief_list(&names),
            "'p0', 'p1', 'p2', ..., 'p5', 'p6', 'p7', 'p8'"
        );
        assert_eq!(brief_list(&names[..2]), "'p0', 'p1'");
    }

    #[test]
    fn shapes_merge() {
        assert_eq!(merge_shape(&[0, 3], &[2, 0]), Some(vec![2, 3]));
        assert_eq!(merge_shape(&[2, 3], &[2, 4]), None);
        assert_eq!(merge_shape(&[2], &[2, 4]), None);
    }
}
