//! Adapter selection, the device, and error capture.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::Precision;
use crate::error::GpuError;

/// What the adapter running the kernels is, so that a software rasteriser is
/// never mistaken for a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)` or
    /// `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// The graphics API wgpu uses: `Vulkan`, `Gl`, `Metal`, `Dx12`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software
    /// implementation such as Mesa's lavapipe/llvmpipe) or `Other`.
    pub device_type: String,
    /// The driver's name and version, where the backend reports them.
    pub driver: String,
    /// Whether this adapter runs on the CPU (`device_type == "Cpu"`).
    pub is_software: bool,
    /// Whether the adapter supports 64-bit floats in shaders.
    pub shader_f64: bool,
}

impl AdapterInfo {
    fn from_wgpu(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Self {
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver,
            is_software: info.device_type == wgpu::DeviceType::Cpu,
            shader_f64: features.contains(wgpu::Features::SHADER_F64),
        }
    }
}

impl fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if self.is_software {
            write!(f, ": software, runs on the CPU")?;
        }
        if !self.driver.is_empty() {
            write!(f, "; driver {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// The environment variables that decide which drivers are visible.
fn environment() -> String {
    let vars = [
        "WGPU_BACKEND",
        "WGPU_ADAPTER_NAME",
        "VK_ICD_FILENAMES",
        "VK_DRIVER_FILES",
        "__EGL_VENDOR_LIBRARY_FILENAMES",
    ];
    let set: Vec<String> = vars
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|value| format!("{v}={value}")))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!(" (environment: {})", set.join(", "))
    }
}

/// Preference of an adapter: lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    };
    (device, backend)
}

/// Errors the device reported outside an error scope, and its loss.
#[derive(Debug, Default)]
struct Pending {
    uncaptured: Vec<String>,
    lost: Option<String>,
}

/// An open device with its queue and error bookkeeping.
#[derive(Debug)]
pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterInfo,
    pub limits: wgpu::Limits,
    pending: Arc<Mutex<Pending>>,
}

impl Gpu {
    /// Pick the best adapter that can run `precision` and open a device on it.
    ///
    /// Backends: all that wgpu was built with, or those named in
    /// `WGPU_BACKEND`. Preference: discrete GPU, integrated, virtual, other,
    /// CPU; then Vulkan, Metal, DX12, GL. GL adapters are only looked at when
    /// no other backend has a suitable adapter.
    pub fn new(precision: Precision) -> Result<Self, GpuError> {
        let backends =
            wgpu::Backends::all().with_env() & wgpu::Instance::enabled_backend_features();
        let instance = |backends| {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            // No validation layers unless asked for (WGPU_VALIDATION=1, ...).
            desc.flags = wgpu::InstanceFlags::empty().with_env();
            desc.backends = backends;
            wgpu::Instance::new(desc)
        };
        let needed = match precision {
            Precision::F32 => wgpu::Features::empty(),
            Precision::F64 => wgpu::Features::SHADER_F64,
        };
        // GL last, in an instance of its own: only when no other backend has a
        // suitable adapter (initialising EGL is slow, and noisy on headless
        // machines).
        let primary = backends - wgpu::Backends::GL;
        let mut adapters = Vec::new();
        if !primary.is_empty() {
            adapters = pollster::block_on(instance(primary).enumerate_adapters(primary));
        }
        if !adapters.iter().any(|a| a.features().contains(needed))
            && backends.contains(wgpu::Backends::GL)
        {
            let gl = wgpu::Backends::GL;
            adapters.extend(pollster::block_on(instance(gl).enumerate_adapters(gl)));
        }
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter {
                details: format!(
                    "wgpu found no adapter on the backends {backends:?}{}",
                    environment()
                ),
            });
        }
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let describe =
            |a: &wgpu::Adapter| AdapterInfo::from_wgpu(&a.get_info(), a.features()).to_string();
        let Some(adapter) = adapters.iter().find(|a| a.features().contains(needed)) else {
            return Err(GpuError::F64Unsupported {
                adapter: adapters.first().map(describe).unwrap_or_default(),
            });
        };
        let info = AdapterInfo::from_wgpu(&adapter.get_info(), adapter.features());
        let limits = adapter.limits();
        let device_desc = wgpu::DeviceDescriptor {
            label: Some("ekp-gpu"),
            required_features: needed,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&device_desc)).map_err(|e| {
                GpuError::RequestDevice {
                    adapter: info.to_string(),
                    message: e.to_string(),
                }
            })?;
        let pending = Arc::new(Mutex::new(Pending::default()));
        {
            let pending = Arc::clone(&pending);
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
                p.uncaptured.push(e.to_string());
            }));
        }
        {
            let pending = Arc::clone(&pending);
            device.set_device_lost_callback(move |reason, message| {
                let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
                p.lost = Some(format!("{reason:?}: {message}"));
            });
        }
        Ok(Self {
            device,
            queue,
            info,
            limits,
            pending,
        })
    }

    /// An error for anything the device reported outside a scope.
    pub fn check(&self, context: &str) -> Result<(), GpuError> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(message) = p.lost.clone() {
            return Err(GpuError::DeviceLost { message });
        }
        if !p.uncaptured.is_empty() {
            let message = p.uncaptured.join("; ");
            p.uncaptured.clear();
            return Err(GpuError::Validation {
                context: context.to_string(),
                message,
            });
        }
        Ok(())
    }

    /// Run `f` inside out-of-memory, validation and internal error scopes:
    /// an error wgpu reports while `f` runs is returned instead of panicking.
    pub fn scoped<R>(
        &self,
        context: &str,
        f: impl FnOnce() -> Result<R, GpuError>,
    ) -> Result<R, GpuError> {
        self.check(context)?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(internal.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            let message = e.to_string();
            let context = context.to_string();
            return Err(match e {
                wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory { context, message },
                wgpu::Error::Internal { .. } => GpuError::DeviceLost { message },
                _ => GpuError::Validation { context, message },
            });
        }
        self.check(context)?;
        result
    }

    /// Block until the device has finished all submitted work.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Poll {
                message: e.to_string(),
            })
    }
}
