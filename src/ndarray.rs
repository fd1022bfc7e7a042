//! `NDArray`: a typed, C-contiguous buffer on a context. Arrays are not a math
//! library; they hold bytes with a shape, a dtype and a device, and hand views
//! to numpy / PyTorch. Sparse arrays (row_sparse, csr) carry their values and
//! int64 aux arrays as dense arrays of their own.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use crate::context::{Context, DeviceType};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Buffer;

/// Storage type, with MXNet's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum SType {
    /// Dense.
    Default = 0,
    /// Row-sparse: sorted row indices plus those rows' values.
    RowSparse = 1,
    /// Compressed sparse rows (2-D).
    Csr = 2,
}

impl SType {
    /// MXNet's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SType::Default => "default",
            SType::RowSparse => "row_sparse",
            SType::Csr => "csr",
        }
    }

    /// The storage type for an MXNet id.
    pub fn from_id(id: i32) -> Option<SType> {
        match id {
            0 => Some(SType::Default),
            1 => Some(SType::RowSparse),
            2 => Some(SType::Csr),
            _ => None,
        }
    }
}

impl FromStr for SType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(SType::Default),
            "row_sparse" => Ok(SType::RowSparse),
            "csr" => Ok(SType::Csr),
            _ => Err(Error::invalid(format!(
                "unknown storage type '{s}': expected 'default', 'row_sparse' or 'csr'"
            ))),
        }
    }
}

impl fmt::Display for SType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The structure of a sparse array at one moment: its values block and aux
/// arrays. [`NDArray::sparse_parts`] hands out such a snapshot.
#[derive(Clone)]
pub struct SparseParts {
    /// row_sparse or csr.
    pub stype: SType,
    /// Shape of the stored values block.
    pub values_shape: Vec<usize>,
    /// The stored values (dense): the stored rows (row_sparse) or non-zeros (csr).
    pub values: NDArray,
    /// Row indices (row_sparse) or column indices (csr), int64.
    pub indices: NDArray,
    /// Row pointers (csr only), int64, length rows + 1.
    pub indptr: Option<NDArray>,
}

/// A typed buffer on a context.
///
/// Dense arrays never change their buffer. A sparse array's structure (which
/// rows or elements are stored) changes when it is assigned to, as MXNet's
/// does; every clone of the array shares that structure, so a parameter's
/// gradient seen from Python and from the autograd adapter stay one array.
#[derive(Clone)]
pub struct NDArray {
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) context: Context,
    /// Dense data; for sparse arrays an empty placeholder (the values live in `sparse`).
    pub(crate) buffer: Buffer,
    pub(crate) sparse: Option<Arc<RwLock<SparseParts>>>,
}

/// Number of elements of `shape`, or an error on overflow.
pub fn checked_size(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

pub(crate) fn checked_nbytes(shape: &[usize], dtype: DType) -> Result<usize> {
    checked_size(shape)
        .and_then(|n| n.checked_mul(dtype.itemsize()))
        .ok_or_else(|| Error::invalid(format!("shape {shape:?} is too large")))
}

impl NDArray {
    /// A dense array over `buffer`, which must hold exactly `size * itemsize` bytes.
    pub fn from_buffer(
        buffer: Buffer,
        shape: Vec<usize>,
        dtype: DType,
        context: Context,
    ) -> Result<NDArray> {
        let nbytes = checked_nbytes(&shape, dtype)?;
        if nbytes != buffer.len() {
            return Err(Error::ShapeMismatch(format!(
                "buffer of {} bytes does not fit shape {shape:?} of {dtype} ({nbytes} bytes)",
                buffer.len()
            )));
        }
        check_placement(&buffer, context)?;
        Ok(NDArray {
            shape,
            dtype,
            context,
            buffer,
            sparse: None,
        })
    }

    /// A zero-filled dense array (device memory on a GPU context, page-locked
    /// memory on `cpu_pinned` when a CUDA driver is present).
    pub fn zeros(shape: &[usize], dtype: DType, context: Context) -> Result<NDArray> {
        let nbytes = checked_nbytes(shape, dtype)?;
        let buffer = match context.device_type {
            DeviceType::Gpu => Buffer::device_zeroed(context.device_id, nbytes)?,
            DeviceType::CpuPinned => Buffer::pinned_zeroed(nbytes)?,
            DeviceType::Cpu | DeviceType::CpuShared => Buffer::zeroed(nbytes)?,
        };
        NDArray::from_buffer(buffer, shape.to_vec(), dtype, context)
    }

    /// A dense array holding a copy of `bytes` (little-endian, C order).
    pub fn from_bytes(
        bytes: &[u8],
        shape: &[usize],
        dtype: DType,
        context: Context,
    ) -> Result<NDArray> {
        let nbytes = checked_nbytes(shape, dtype)?;
        if nbytes != bytes.len() {
            return Err(Error::ShapeMismatch(format!(
                "{} bytes do not fit shape {shape:?} of {dtype} ({nbytes} bytes)",
                bytes.len()
            )));
        }
        NDArray::from_buffer(
            buffer_holding(bytes, context)?,
            shape.to_vec(),
            dtype,
            context,
        )
    }

    /// The logical (dense) shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device.
    pub fn context(&self) -> Context {
        self.context
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of (logical) elements.
    pub fn size(&self) -> usize {
        checked_size(&self.shape).unwrap_or(usize::MAX)
    }

    /// Storage type.
    pub fn stype(&self) -> SType {
        self.sparse_parts().map_or(SType::Default, |s| s.stype)
    }

    /// A snapshot of the structure, for sparse arrays.
    pub fn sparse_parts(&self) -> Option<SparseParts> {
        // A panic while the lock was held cannot leave the parts half-written:
        // they are replaced whole.
        self.sparse
            .as_ref()
            .map(|c| c.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// This array as it is now: for a sparse array, a handle on its current
    /// structure that later assignments to `self` do not change (so that a
    /// writer reads one consistent structure); for a dense array, a clone.
    pub fn snapshot(&self) -> NDArray {
        let mut out = self.clone();
        if let Some(parts) = self.sparse_parts() {
            out.sparse = Some(Arc::new(RwLock::new(parts)));
        }
        out
    }

    /// The buffer holding a dense array's data. Sparse arrays keep their
    /// values elsewhere (see [`NDArray::values`]); theirs is empty.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// Starts fetching what reading this array's header touches: the shape and
    /// the storage record (see [`Buffer::prefetch_storage`]).
    pub fn prefetch_header(&self) {
        crate::storage::prefetch(self.shape.as_ptr().cast());
        self.buffer.prefetch_storage();
    }

    /// Bytes of the stored data (the values block for sparse arrays).
    pub fn nbytes(&self) -> usize {
        match self.sparse_parts() {
            None => self.buffer.len(),
            Some(p) => p.values.buffer.len(),
        }
    }

    /// For sparse arrays, the values block as a dense array sharing memory;
    /// for dense arrays, a clone.
    pub fn values(&self) -> NDArray {
        match self.sparse_parts() {
            None => self.clone(),
            Some(p) => p.values,
        }
    }

    /// Whether the data pointer is aligned to the item size.
    pub fn is_aligned(&self) -> bool {
        (self.values().buffer.as_ptr() as usize) % self.dtype.itemsize() == 0
    }

    /// The same array relabelled onto another host context (no copy). A
    /// relabelling between host and device memory is ignored: it would lie
    /// about where the bytes are (use [`NDArray::copy_to`]).
    pub fn with_context(mut self, context: Context) -> NDArray {
        if check_placement(&self.buffer, context).is_ok() {
            self.context = context;
        }
        self
    }

    /// A dense array reinterpreting the same storage with another shape of equal size.
    pub fn reshaped(&self, shape: Vec<usize>) -> Result<NDArray> {
        if self.sparse.is_some() {
            return Err(Error::invalid("cannot reshape a sparse array"));
        }
        NDArray::from_buffer(self.buffer.clone(), shape, self.dtype, self.context)
    }

    /// A copy in owned memory on `context`, of the same storage type: a
    /// host copy, host-to-device, device-to-host, device-to-device or peer
    /// copy as the two contexts require.
    pub fn copy_to(&self, context: Context) -> Result<NDArray> {
        if let Some(p) = self.sparse_parts() {
            return NDArray::sparse(
                p.stype,
                self.shape.clone(),
                p.values.copy_to(context)?,
                p.indices.copy_to(context)?,
                p.indptr.as_ref().map(|i| i.copy_to(context)).transpose()?,
            );
        }
        let buffer = match context.device_type {
            DeviceType::Cpu | DeviceType::CpuShared if !self.buffer.is_device() => {
                Buffer::copy_from(&self.buffer.try_read()?)?
            }
            DeviceType::Gpu if !self.buffer.is_device() => {
                Buffer::device_from(context.device_id, &self.buffer.try_read()?)?
            }
            _ => {
                let out = NDArray::zeros(&self.shape, self.dtype, context)?;
                crate::storage::copy_buffer(&out.buffer, &self.buffer)?;
                return Ok(out);
            }
        };
        NDArray::from_buffer(buffer, self.shape.clone(), self.dtype, context)
    }

    /// Copies `src`'s bytes into this array in place; shapes and dtypes must
    /// agree. A sparse array takes `src`'s values as `assign_to_sparse`
    /// (in the `sparse` module) does; a dense one takes a sparse `src`'s
    /// dense values.
    pub fn assign(&self, src: &NDArray) -> Result<()> {
        if self.sparse.is_some() {
            return self.assign_to_sparse(src);
        }
        if src.sparse.is_some() {
            return self.assign(&src.to_dense()?);
        }
        if src.shape != self.shape {
            return Err(Error::ShapeMismatch(format!(
                "cannot assign an array of shape {:?} to one of shape {:?}",
                src.shape, self.shape
            )));
        }
        if src.dtype != self.dtype {
            return Err(Error::DTypeMismatch(format!(
                "cannot assign {} data to a {} array",
                src.dtype, self.dtype
            )));
        }
        if src.buffer.same_storage(&self.buffer) {
            return Ok(());
        }
        crate::storage::copy_buffer(&self.buffer, &src.buffer)
    }

    /// Overwrites the data with `bytes` (exactly `nbytes()` long).
    pub fn assign_bytes(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.buffer.len() {
            return Err(Error::ShapeMismatch(format!(
                "{} bytes do not fit an array of {} bytes",
                bytes.len(),
                self.buffer.len()
            )));
        }
        self.buffer.upload(bytes)
    }
}

/// Owned memory for `context` holding a copy of `bytes`.
fn buffer_holding(bytes: &[u8], context: Context) -> Result<Buffer> {
    match context.device_type {
        DeviceType::Gpu => Buffer::device_from(context.device_id, bytes),
        DeviceType::CpuPinned => {
            let b = Buffer::pinned_zeroed(bytes.len())?;
            b.upload(bytes)?;
            Ok(b)
        }
        DeviceType::Cpu | DeviceType::CpuShared => Buffer::copy_from(bytes),
    }
}

/// Device memory must carry its own GPU context and host memory a host one,
/// so that no code ever treats device addresses as host bytes.
fn check_placement(buffer: &Buffer, context: Context) -> Result<()> {
    let ok = match buffer.device_alloc() {
        Some(d) => context.device_type == DeviceType::Gpu && context.device_id == d.device(),
        None => context.is_host(),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "an array on {context} needs memory of that device; copy it there with copyto"
        )))
    }
}

impl fmt::Debug for NDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<NDArray {:?} {} @{} {}>",
            self.shape,
            self.dtype,
            self.context,
            self.stype()
        )
    }
}
