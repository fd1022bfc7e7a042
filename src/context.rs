//! Devices as MXNet names them: a device type (MXNet ids 1/2/3/5) and an
//! ordinal, plus the thread-local default context that `with ctx:` sets.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// MXNet's device types, with MXNet's numeric ids as discriminants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum DeviceType {
    /// Host memory.
    Cpu = 1,
    /// A CUDA device.
    Gpu = 2,
    /// Page-locked host memory.
    CpuPinned = 3,
    /// Host memory shared between processes.
    CpuShared = 5,
}

impl DeviceType {
    /// The device type for an MXNet id.
    pub fn from_id(id: i32) -> Option<DeviceType> {
        match id {
            1 => Some(DeviceType::Cpu),
            2 => Some(DeviceType::Gpu),
            3 => Some(DeviceType::CpuPinned),
            5 => Some(DeviceType::CpuShared),
            _ => None,
        }
    }

    /// MXNet's id.
    pub fn id(self) -> i32 {
        self as i32
    }

    /// MXNet's spelling.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Cpu => "cpu",
            DeviceType::Gpu => "gpu",
            DeviceType::CpuPinned => "cpu_pinned",
            DeviceType::CpuShared => "cpu_shared",
        }
    }

    /// Whether memory of this type is addressable by the host.
    pub fn is_host(self) -> bool {
        !matches!(self, DeviceType::Gpu)
    }
}

impl FromStr for DeviceType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceType::Cpu),
            "gpu" => Ok(DeviceType::Gpu),
            "cpu_pinned" => Ok(DeviceType::CpuPinned),
            "cpu_shared" => Ok(DeviceType::CpuShared),
            _ => Err(Error::invalid(format!(
                "unknown device type '{s}': expected 'cpu', 'gpu', 'cpu_pinned' or 'cpu_shared'"
            ))),
        }
    }
}

/// A device: type and ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Context {
    /// The device type.
    pub device_type: DeviceType,
    /// The ordinal.
    pub device_id: u32,
}

impl Context {
    /// A context of the given type and ordinal.
    pub const fn new(device_type: DeviceType, device_id: u32) -> Self {
        Context {
            device_type,
            device_id,
        }
    }

    /// `cpu(i)`.
    pub const fn cpu(i: u32) -> Self {
        Context::new(DeviceType::Cpu, i)
    }

    /// `gpu(i)`.
    pub const fn gpu(i: u32) -> Self {
        Context::new(DeviceType::Gpu, i)
    }

    /// `cpu_pinned(i)`.
    pub const fn cpu_pinned(i: u32) -> Self {
        Context::new(DeviceType::CpuPinned, i)
    }

    /// `cpu_shared(i)`.
    pub const fn cpu_shared(i: u32) -> Self {
        Context::new(DeviceType::CpuShared, i)
    }

    /// Whether the memory is host-addressable.
    pub fn is_host(self) -> bool {
        self.device_type.is_host()
    }

    /// The key Gluon's context map uses: `(device_typeid & 1, device_id)`, so
    /// cpu, cpu_pinned and cpu_shared of one ordinal share a slot (MXNet 1.9.1).
    pub fn slot_key(self) -> (u8, u32) {
        ((self.device_type.id() & 1) as u8, self.device_id)
    }

    /// The current thread's default context (`cpu(0)` unless set).
    pub fn current() -> Context {
        DEFAULT_CONTEXT.with(Cell::get)
    }

    /// Sets the current thread's default context and returns the previous one.
    pub fn set_current(ctx: Context) -> Context {
        DEFAULT_CONTEXT.with(|c| c.replace(ctx))
    }
}

thread_local! {
    static DEFAULT_CONTEXT: Cell<Context> = const { Cell::new(Context::cpu(0)) };
}

impl Default for Context {
    fn default() -> Self {
        Context::cpu(0)
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.device_type.name(), self.device_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_contexts_share_a_slot() {
        assert_eq!(
            Context::cpu(1).slot_key(),
            Context::cpu_pinned(1).slot_key()
        );
        assert_eq!(
            Context::cpu(1).slot_key(),
            Context::cpu_shared(1).slot_key()
        );
        assert_ne!(Context::cpu(1).slot_key(), Context::gpu(1).slot_key());
        assert_ne!(Context::cpu(0).slot_key(), Context::cpu(1).slot_key());
    }

    #[test]
    fn default_is_thread_local() {
        let prev = Context::set_current(Context::cpu(3));
        assert_eq!(Context::current(), Context::cpu(3));
        std::thread::spawn(|| assert_eq!(Context::current(), Context::cpu(0)))
            .join()
            .expect("thread");
        Context::set_current(prev);
        assert_eq!(Context::to_string(&Context::gpu(2)), "gpu(2)");
    }
}
