//! [`Lorenz96Gpu`]: the Lorenz 96 ensemble model on a wgpu device.

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ekp_core::{ForwardModel, ModelError};
use ekp_models::{Forcing, Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;

use crate::device::{AdapterInfo, Gpu};
use crate::error::GpuError;
use crate::shader::{CHECK_INTERVAL, Kernel, KernelSpec, Observation, WORKGROUP_SIZE, acc_rows};
use crate::{MAX_SITES, MAX_STEPS_PER_DISPATCH, Precision};

const MODEL: &str = "lorenz96";

/// Values of the forcing window (sin(ω t_j) of one dispatch's steps, in a
/// uniform buffer: 8 KiB in f32, 16 KiB in f64, within wgpu's downlevel uniform
/// binding limit). Twice [`MAX_STEPS_PER_DISPATCH`], so that a dispatch of the
/// spin-up or integrating kernel never needs cutting, nor one of the observing
/// kernel unless a sub-window is longer than about 1 000 steps.
const FORCING_WINDOW: usize = 2048;

/// The per-dispatch uniform (`struct Dispatch` in the kernel).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DispatchUniform {
    /// Steps done before this dispatch.
    step0: u32,
    /// Steps of this dispatch.
    steps: u32,
    /// Members in this chunk.
    members: u32,
    /// Stride of the member-major rows of the state/accumulator buffers.
    stride: u32,
    /// The step `j` of the forcing window's first value.
    j0: u32,
    /// Padding to the 16-byte multiple of a uniform struct.
    pad: [u32; 3],
}

/// Timing of [`Lorenz96Gpu::integrate_only`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntegrationStats {
    /// Members integrated.
    pub members: usize,
    /// RK4 steps per member.
    pub steps: usize,
    /// Chunks of members (one after the other).
    pub chunks: usize,
    /// Compute dispatches submitted (chunks × step blocks).
    pub dispatches: usize,
    /// Wall time from the first upload to the end of the last dispatch
    /// (pipeline compilation excluded, nothing read back).
    pub elapsed: Duration,
}

impl IntegrationStats {
    /// Member-steps per second: `members · steps / elapsed`.
    pub fn member_steps_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.members as f64) * (self.steps as f64) / secs
        } else {
            0.0
        }
    }
}

/// What a chunk runs: the model (spin-up, then the observed window), or the
/// integration alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Observe,
    Integrate,
}

/// Device buffers for one chunk of members, reused and grown across calls.
#[derive(Debug)]
struct Buffers {
    /// Members the buffers hold (the row stride).
    capacity: usize,
    uniform: wgpu::Buffer,
    theta: wgpu::Buffer,
    state: wgpu::Buffer,
    acc: wgpu::Buffer,
    outputs: wgpu::Buffer,
    /// The forcing window: sin(ω t_j) for the steps of one dispatch.
    window: wgpu::Buffer,
}

/// How a kernel's (possibly virtual) step `v` maps to the integration step
/// `j` whose forcing it uses.
#[derive(Debug, Clone, Copy)]
enum StepMap {
    /// `j = v + 1` (the spin-up and integrating kernels).
    Direct,
    /// The observing kernel: every sub-window of `spw` steps twice, from
    /// step `first` (see `KernelSpec::observe_step`).
    Replayed { first: usize, spw: usize },
}

impl StepMap {
    /// The integration step `j` of kernel step `v` (`spw ≥ 1`: the model's
    /// validation makes a sub-window span at least 2 steps).
    fn step(self, v: usize) -> usize {
        match self {
            Self::Direct => v + 1,
            Self::Replayed { first, spw } => first + (v / (2 * spw)) * spw + (v % (2 * spw)) % spw,
        }
    }

    /// The first step `j0` and the length of the forcing window of the
    /// dispatch of the steps `v0..v0 + len`, `len` cut (to at least 1) so that
    /// the window holds at most `window` values.
    fn window(self, v0: usize, len: usize, window: usize) -> (usize, usize, usize) {
        let first = self.step(v0);
        let (mut lo, mut hi) = (first, first);
        let mut taken = 1;
        while taken < len {
            let j = self.step(v0 + taken);
            let (l, h) = (lo.min(j), hi.max(j));
            if h - l + 1 > window {
                break;
            }
            (lo, hi) = (l, h);
            taken += 1;
        }
        (lo, hi + 1 - lo, taken)
    }
}

/// One kernel's share of a chunk's integration: its steps `0..to`, bound to
/// the first `bindings` buffers.
struct Phase<'a> {
    pipeline: &'a wgpu::ComputePipeline,
    bindings: usize,
    /// The steps the kernel runs (the observing kernel's are virtual).
    to: usize,
    /// Which integration step each of them is.
    steps: StepMap,
    /// End every dispatch at the CPU's next divergence check point (the
    /// spin-up with a finite `max_abs_state`).
    at_check_points: bool,
}

/// What every dispatch of one chunk shares.
struct ChunkDispatch<'a> {
    buffers: &'a Buffers,
    /// Members in the chunk.
    members: usize,
    /// The row stride of the per-member buffers.
    capacity: usize,
    /// After the last dispatch, copy the first bytes of the first buffer into
    /// the second (the read-back buffer).
    read_back: Option<(&'a wgpu::Buffer, &'a wgpu::Buffer, u64)>,
}

/// Mutable state behind the model's `&self` interface.
#[derive(Debug, Default)]
struct Resources {
    buffers: Option<Buffers>,
    staging: Option<wgpu::Buffer>,
    integrate: Option<wgpu::ComputePipeline>,
}

/// Lorenz 96 (EKP.jl's Lorenz example) evaluated for a whole ensemble on a GPU
/// through wgpu: the same function as [`ekp_models::Lorenz96`] in an
/// [`ekp_models::Ensemble`], one kernel invocation per member.
///
/// Built once ([`Lorenz96Gpu::new`]: adapter, device, kernel); every
/// evaluation reuses the device buffers, growing them when an ensemble is
/// larger than any before. Parameters are the rows `[F, A]` of a `2 × N`
/// matrix; outputs the `d` variance observables of each member (4 with the
/// default configuration), a NaN column for a member whose state became
/// non-finite or left `[-max_abs_state, max_abs_state]`.
///
/// See the [crate documentation](crate) for the kernel, chunking and precision.
#[derive(Debug)]
pub struct Lorenz96Gpu {
    model: Lorenz96,
    precision: Precision,
    gpu: Gpu,
    /// The kernel of the steps before the observed window.
    spinup: wgpu::ComputePipeline,
    /// The kernel of the observed window.
    observe: wgpu::ComputePipeline,
    /// Members one chunk may hold, from the device limits.
    device_max_members: usize,
    /// A smaller cap set with [`Lorenz96Gpu::with_max_members_per_dispatch`].
    user_max_members: Option<usize>,
    steps_per_dispatch: usize,
    /// Values in the forcing window (see `KernelSpec::window`).
    window: usize,
    resources: Mutex<Resources>,
}

impl Lorenz96Gpu {
    /// Validate `config`, pick an adapter that supports `precision`, open a
    /// device, and compile the kernel for this configuration.
    ///
    /// # Errors
    ///
    /// [`GpuError::Config`] for an invalid configuration,
    /// [`GpuError::InvalidInput`] for more than [`MAX_SITES`] sites,
    /// [`GpuError::NoAdapter`] when wgpu finds no adapter,
    /// [`GpuError::F64Unsupported`] for `Precision::F64` on an adapter without
    /// 64-bit floats, and device or validation failures.
    pub fn new(config: Lorenz96Config, precision: Precision) -> Result<Self, GpuError> {
        let model = Lorenz96::new(config)?;
        if model.config().sites > MAX_SITES {
            return Err(GpuError::InvalidInput {
                message: format!(
                    "{} sites: the GPU kernel writes every site out and keeps the state in \
                     registers, for at most {MAX_SITES} sites (the CPU models of ekp-models have no such limit)",
                    model.config().sites
                ),
            });
        }
        let total = model.member_steps();
        if total > (u32::MAX as usize) - MAX_STEPS_PER_DISPATCH {
            return Err(GpuError::InvalidInput {
                message: format!(
                    "a member integrates {total} steps; the GPU kernel counts steps in 32 bits"
                ),
            });
        }
        let gpu = Gpu::new(precision)?;
        let window = forcing_window(&gpu.limits, precision)?;
        let observation = observation(&model);
        let spinup = compile(
            &gpu,
            &kernel_spec(
                &model,
                precision,
                window,
                Kernel::Spinup(observation.clone()),
            ),
        )?;
        let observe = compile(
            &gpu,
            &kernel_spec(&model, precision, window, Kernel::Observe(observation)),
        )?;

        let bytes = precision.bytes() as u64;
        let binding = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size);
        // The widest per-member buffer: the accumulators (d observables, the
        // sub-window's statistics and starting state: more rows than the
        // state's `sites`).
        let rows = acc_rows(
            model.sub_windows() / model.config().fit_windows,
            model.config().sites,
        ) as u64;
        let by_binding = binding / (rows * bytes);
        let by_dispatch =
            u64::from(gpu.limits.max_compute_workgroups_per_dimension) * u64::from(WORKGROUP_SIZE);
        // Indices into the buffers are u32 in the kernel.
        let by_index = u64::from(u32::MAX) / rows;
        let device_max_members = usize::try_from(by_binding.min(by_dispatch).min(by_index))
            .unwrap_or(usize::MAX)
            .max(1);

        Ok(Self {
            model,
            precision,
            gpu,
            spinup,
            observe,
            device_max_members,
            user_max_members: None,
            steps_per_dispatch: MAX_STEPS_PER_DISPATCH,
            window,
            resources: Mutex::new(Resources::default()),
        })
    }

    /// Cap the members of one chunk (one dispatch sequence over a set of
    /// buffers) at `n` (at least 1), below what the device limits allow:
    /// larger ensembles run as several chunks one after the other. Used to test
    /// the chunking without gigabytes of buffers, and to bound memory.
    #[must_use]
    pub fn with_max_members_per_dispatch(mut self, n: usize) -> Self {
        self.user_max_members = Some(n.max(1));
        self
    }

    /// Set the RK4 steps one dispatch runs, clamped to
    /// `1..=MAX_STEPS_PER_DISPATCH` (the default is the maximum).
    #[must_use]
    pub fn with_steps_per_dispatch(mut self, steps: usize) -> Self {
        self.steps_per_dispatch = steps.clamp(1, MAX_STEPS_PER_DISPATCH);
        self
    }

    /// The adapter the kernels run on (a software adapter says so).
    pub fn adapter_info(&self) -> &AdapterInfo {
        &self.gpu.info
    }

    /// The configuration.
    pub fn config(&self) -> &Lorenz96Config {
        self.model.config()
    }

    /// The CPU model with the same configuration (initial state, layout).
    pub fn cpu_model(&self) -> &Lorenz96 {
        &self.model
    }

    /// The working precision of the kernels.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Members one chunk holds: the device limits (storage binding size,
    /// workgroups per dispatch) or the cap set with
    /// [`with_max_members_per_dispatch`](Self::with_max_members_per_dispatch).
    pub fn max_members_per_dispatch(&self) -> usize {
        self.user_max_members
            .map_or(self.device_max_members, |n| n.min(self.device_max_members))
    }

    /// RK4 steps per dispatch.
    pub fn steps_per_dispatch(&self) -> usize {
        self.steps_per_dispatch
    }

    /// Evaluate every column `[F, A]` of `params` (`2 × N`) into a new
    /// `d × N` matrix of observables (NaN columns for failed members),
    /// calling `progress(k)` after each chunk of `k` members.
    ///
    /// # Errors
    ///
    /// [`GpuError::InvalidInput`] if `params` does not have 2 rows; device,
    /// validation and read-back failures.
    pub fn observables(
        &self,
        params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<DMatrix<f64>, GpuError> {
        check_params(params)?;
        let d = self.output_dim();
        let mut out = DMatrix::zeros(d, params.ncols());
        let total = self.model.member_steps();
        let fit = self.model.config().fit_windows as f64;
        let mut res = self.lock();
        let mut start = 0;
        while start < params.ncols() {
            let len = self.max_members_per_dispatch().min(params.ncols() - start);
            let chunk = params.columns(start, len).into_owned();
            let values = self.run_chunk(&mut res, Job::Observe, &chunk, total, true)?;
            for m in 0..len {
                let row = &values[m * (d + 1)..(m + 1) * (d + 1)];
                let theta_ok = chunk.column(m).iter().all(|v| v.is_finite());
                let ok = theta_ok && row[d] == 0.0 && row[..d].iter().all(|v| v.is_finite());
                let mut col = out.column_mut(start + m);
                for k in 0..d {
                    col[k] = if ok { row[k] / fit } else { f64::NAN };
                }
            }
            progress(len);
            start += len;
        }
        Ok(out)
    }

    /// The states after `steps` RK4 steps from the initial state, one column
    /// (`sites` values) per member: what [`Lorenz96::final_state`] computes on
    /// the CPU. For tests and diagnostics; no divergence check.
    ///
    /// # Errors
    ///
    /// As [`observables`](Self::observables).
    pub fn final_states(
        &self,
        params: &DMatrix<f64>,
        steps: usize,
    ) -> Result<DMatrix<f64>, GpuError> {
        check_params(params)?;
        check_steps(steps)?;
        let n = self.model.config().sites;
        let mut out = DMatrix::zeros(n, params.ncols());
        let mut res = self.lock();
        self.ensure_integrate(&mut res)?;
        let mut start = 0;
        while start < params.ncols() {
            let len = self.max_members_per_dispatch().min(params.ncols() - start);
            let chunk = params.columns(start, len).into_owned();
            let values = self.run_chunk(&mut res, Job::Integrate, &chunk, steps, true)?;
            let stride = res.buffers.as_ref().map_or(len, |b| b.capacity);
            for m in 0..len {
                for i in 0..n {
                    out[(i, start + m)] = values[i * stride + m];
                }
            }
            start += len;
        }
        Ok(out)
    }

    /// Integrate every member `steps` RK4 steps without observables and without
    /// reading anything back, and time it: the measurement behind ekp-cli's
    /// GPU benchmark. The kernel is compiled (once) before the
    /// clock starts.
    ///
    /// # Errors
    ///
    /// As [`observables`](Self::observables).
    pub fn integrate_only(
        &self,
        params: &DMatrix<f64>,
        steps: usize,
    ) -> Result<IntegrationStats, GpuError> {
        check_params(params)?;
        check_steps(steps)?;
        let mut res = self.lock();
        self.ensure_integrate(&mut res)?;
        let cap = self.max_members_per_dispatch();
        self.ensure_buffers(&mut res, params.ncols().min(cap))?;
        let begin = Instant::now();
        let mut chunks = 0;
        let mut start = 0;
        while start < params.ncols() {
            let len = cap.min(params.ncols() - start);
            let chunk = params.columns(start, len).into_owned();
            self.run_chunk(&mut res, Job::Integrate, &chunk, steps, false)?;
            chunks += 1;
            start += len;
        }
        Ok(IntegrationStats {
            members: params.ncols(),
            steps,
            chunks,
            dispatches: chunks * steps.div_ceil(self.steps_per_dispatch),
            elapsed: begin.elapsed(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Resources> {
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn ensure_integrate(&self, res: &mut Resources) -> Result<(), GpuError> {
        if res.integrate.is_none() {
            res.integrate = Some(compile(
                &self.gpu,
                &kernel_spec(&self.model, self.precision, self.window, Kernel::Integrate),
            )?);
        }
        Ok(())
    }

    /// Make the chunk buffers hold at least `members` members.
    fn ensure_buffers(&self, res: &mut Resources, members: usize) -> Result<(), GpuError> {
        if res.buffers.as_ref().is_some_and(|b| b.capacity >= members) {
            return Ok(());
        }
        // Round up to whole workgroups, within the device's cap.
        let wg = WORKGROUP_SIZE as usize;
        let capacity = members
            .div_ceil(wg)
            .saturating_mul(wg)
            .min(self.max_members_per_dispatch())
            .max(members)
            .max(1);
        let s = self.precision.bytes() as u64;
        let cap = capacity as u64;
        let n = self.model.config().sites as u64;
        let d = self.output_dim() as u64;
        let buffers = self.gpu.scoped("allocating device buffers", || {
            let device = &self.gpu.device;
            let storage = |label, size: u64, extra| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: size.max(4),
                    usage: wgpu::BufferUsages::STORAGE | extra,
                    mapped_at_creation: false,
                })
            };
            Ok(Buffers {
                capacity,
                uniform: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("ekp-gpu dispatch"),
                    size: std::mem::size_of::<DispatchUniform>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                theta: storage("ekp-gpu theta", 2 * cap * s, wgpu::BufferUsages::COPY_DST),
                state: storage("ekp-gpu state", n * cap * s, wgpu::BufferUsages::COPY_SRC),
                acc: storage(
                    "ekp-gpu accumulators",
                    acc_rows(d as usize, n as usize) as u64 * cap * s,
                    wgpu::BufferUsages::empty(),
                ),
                outputs: storage(
                    "ekp-gpu outputs",
                    (d + 1) * cap * s,
                    wgpu::BufferUsages::COPY_SRC,
                ),
                window: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("ekp-gpu forcing window"),
                    size: self.window as u64 * s,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            })
        })?;
        res.buffers = Some(buffers);
        Ok(())
    }

    /// A read-back buffer of at least `size` bytes.
    fn ensure_staging(&self, res: &mut Resources, size: u64) -> Result<(), GpuError> {
        if res.staging.as_ref().is_some_and(|b| b.size() >= size) {
            return Ok(());
        }
        let staging = self.gpu.scoped("allocating the read-back buffer", || {
            Ok(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ekp-gpu staging"),
                size: size.max(8),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        })?;
        res.staging = Some(staging);
        Ok(())
    }

    /// Run one chunk (at most `max_members_per_dispatch` members) through
    /// `steps` steps of `job`, and read back its outputs (observing: `d + 1`
    /// values per member, member-major) or its states (integrating: `sites`
    /// rows of `capacity`) when `read` is set.
    fn run_chunk(
        &self,
        res: &mut Resources,
        job: Job,
        chunk: &DMatrix<f64>,
        steps: usize,
        read: bool,
    ) -> Result<Vec<f64>, GpuError> {
        let members = chunk.ncols();
        self.ensure_buffers(res, members)?;
        let s = self.precision.bytes() as u64;
        let d = self.output_dim() as u64;
        let n = self.model.config().sites;
        let capacity = res.buffers.as_ref().map_or(members, |b| b.capacity);
        if steps == 0 {
            // Nothing to run (only the integrating job allows 0 steps): every
            // member is still at the initial state.
            let mut values = vec![0.0; n * capacity];
            if read {
                for (i, x) in self.model.initial_state().iter().enumerate() {
                    values[i * capacity..i * capacity + members].fill(self.precision.round(*x));
                }
            }
            return Ok(values);
        }
        let read_bytes = match job {
            Job::Observe => (d + 1) * members as u64 * s,
            Job::Integrate => (n * capacity) as u64 * s,
        };
        if read {
            self.ensure_staging(res, read_bytes)?;
        }
        let Some(buffers) = res.buffers.as_ref() else {
            return Err(internal("device buffers missing"));
        };
        let staging = if read {
            Some(
                res.staging
                    .as_ref()
                    .ok_or_else(|| internal("read-back buffer missing"))?,
            )
        } else {
            None
        };
        let source = match job {
            Job::Observe => &buffers.outputs,
            Job::Integrate => &buffers.state,
        };
        let dispatch = ChunkDispatch {
            buffers,
            members,
            capacity,
            read_back: staging.map(|staging| (source, staging, read_bytes)),
        };
        let phases = self.phases(res, job, steps)?;
        let context = match job {
            Job::Observe => "running the Lorenz 96 kernels",
            Job::Integrate => "running the Lorenz 96 integration kernel",
        };
        self.gpu.scoped(context, || {
            let theta: Vec<f64> = chunk.iter().copied().collect();
            self.gpu
                .queue
                .write_buffer(&buffers.theta, 0, &self.precision.encode(&theta));
            let last = phases.len().saturating_sub(1);
            for (k, phase) in phases.iter().enumerate() {
                self.run_phase(&dispatch, phase, k == last);
            }
            self.gpu.wait()
        })?;
        match staging {
            Some(staging) => self.read(staging, read_bytes),
            None => Ok(Vec::new()),
        }
    }

    /// The kernels a `job` of `steps` steps runs, in order. The observing
    /// kernel counts its own (virtual) steps from 0: every sub-window twice
    /// (see `KernelSpec::observe_step`).
    fn phases<'a>(
        &'a self,
        res: &'a Resources,
        job: Job,
        steps: usize,
    ) -> Result<Vec<Phase<'a>>, GpuError> {
        Ok(match job {
            Job::Observe => {
                let before = self.model.first_observed_step(0) - 1;
                let window = observation(&self.model).virtual_steps() as usize;
                let finite_limit = self.model.config().max_abs_state < self.precision.max_finite();
                vec![
                    Phase {
                        pipeline: &self.spinup,
                        bindings: 5,
                        to: before,
                        steps: StepMap::Direct,
                        at_check_points: finite_limit,
                    },
                    Phase {
                        pipeline: &self.observe,
                        bindings: 6,
                        to: window,
                        steps: StepMap::Replayed {
                            first: before + 1,
                            spw: self.model.steps_per_sub_window(),
                        },
                        at_check_points: false,
                    },
                ]
            }
            Job::Integrate => vec![Phase {
                pipeline: res
                    .integrate
                    .as_ref()
                    .ok_or_else(|| internal("integration kernel missing"))?,
                bindings: 4,
                to: steps,
                steps: StepMap::Direct,
                at_check_points: false,
            }],
        })
    }

    /// Submit the dispatches of one phase (steps `0..phase.to`, at most
    /// `steps_per_dispatch` each); after the last one of the `last` phase,
    /// the copy into the read-back buffer.
    fn run_phase(&self, chunk: &ChunkDispatch<'_>, phase: &Phase<'_>, last: bool) {
        let device = &self.gpu.device;
        let queue = &self.gpu.queue;
        let b = chunk.buffers;
        let all = [
            &b.uniform, &b.theta, &b.window, &b.state, &b.acc, &b.outputs,
        ];
        let entries: Vec<_> = all[..phase.bindings]
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ekp-gpu bind group"),
            layout: &phase.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = (chunk.members as u32).div_ceil(WORKGROUP_SIZE);
        let mut step0 = 0;
        while step0 < phase.to {
            let mut block = self.steps_per_dispatch.min(phase.to - step0);
            if phase.at_check_points {
                let next = (step0 / CHECK_INTERVAL + 1) * CHECK_INTERVAL;
                block = block.min(next - step0);
            }
            // The forcing of the dispatch's steps: sin(ω t_j), t_j = dt·j, as
            // the CPU computes it; the kernel forms F + A·sin in its working
            // precision.
            let (j0, len, fitted) = phase.steps.window(step0, block, self.window);
            block = fitted;
            let c = self.model.config();
            let sines: Vec<f64> = (j0..j0 + len)
                .map(|j| Forcing::sine(c.omega, c.dt * j as f64))
                .collect();
            let uniform = DispatchUniform {
                step0: step0 as u32,
                steps: block as u32,
                members: chunk.members as u32,
                stride: chunk.capacity as u32,
                j0: j0 as u32,
                pad: [0; 3],
            };
            // Written before this submission's commands run: each dispatch
            // sees its own uniform and forcing window.
            queue.write_buffer(&b.uniform, 0, bytemuck::bytes_of(&uniform));
            queue.write_buffer(&b.window, 0, &self.precision.encode(&sines));
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("ekp-gpu steps"),
            });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("ekp-gpu steps"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(phase.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            }
            step0 += block;
            if let (true, Some((source, staging, bytes))) =
                (last && step0 >= phase.to, chunk.read_back)
            {
                encoder.copy_buffer_to_buffer(source, 0, staging, 0, bytes);
            }
            queue.submit([encoder.finish()]);
        }
    }

    /// Map the first `bytes` of `staging` and convert them to f64.
    fn read(&self, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<f64>, GpuError> {
        let (tx, rx) = mpsc::channel();
        self.gpu.scoped("reading results back", || {
            staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            });
            self.gpu.wait()
        })?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(GpuError::Map {
                    message: e.to_string(),
                });
            }
            Err(_) => {
                return Err(GpuError::Map {
                    message: "the mapping callback was never called".to_string(),
                });
            }
        }
        let values = staging
            .get_mapped_range(0..bytes)
            .map(|view| self.precision.decode(&view))
            .map_err(|e| GpuError::Map {
                message: e.to_string(),
            });
        staging.unmap();
        values
    }
}

fn internal(what: &str) -> GpuError {
    GpuError::Internal {
        message: what.to_string(),
    }
}

fn check_params(params: &DMatrix<f64>) -> Result<(), GpuError> {
    if params.nrows() != 2 {
        return Err(GpuError::InvalidInput {
            message: format!(
                "lorenz96 takes 2 parameters [F, A] per member, got a matrix with {} rows",
                params.nrows()
            ),
        });
    }
    Ok(())
}

fn check_steps(steps: usize) -> Result<(), GpuError> {
    if steps > (u32::MAX as usize) - MAX_STEPS_PER_DISPATCH {
        return Err(GpuError::InvalidInput {
            message: format!("{steps} steps: the GPU kernel counts steps in 32 bits"),
        });
    }
    Ok(())
}

/// The observed window of a member's integration.
fn observation(model: &Lorenz96) -> Observation {
    let c = model.config();
    Observation {
        first: model.first_observed_step(0) as u32,
        steps_per_sub_window: model.steps_per_sub_window() as u32,
        fit_windows: c.fit_windows as u32,
        observables: (model.sub_windows() / c.fit_windows) as u32,
        last: model.member_steps() as u32,
        limit: c.max_abs_state,
    }
}

fn kernel_spec(
    model: &Lorenz96,
    precision: Precision,
    window: usize,
    kernel: Kernel,
) -> KernelSpec {
    KernelSpec {
        precision,
        dt: model.config().dt,
        x0: model.initial_state().to_vec(),
        window,
        kernel,
    }
}

/// The values of the forcing window: [`FORCING_WINDOW`], or fewer where the
/// device's uniform bindings are smaller (a multiple of 4, so that both
/// precisions fill whole 16-byte slots).
fn forcing_window(limits: &wgpu::Limits, precision: Precision) -> Result<usize, GpuError> {
    let by_limit = limits.max_uniform_buffer_binding_size as usize / precision.bytes();
    let window = FORCING_WINDOW.min(by_limit) / 4 * 4;
    if window == 0 {
        return Err(GpuError::InvalidInput {
            message: format!(
                "the device's uniform bindings hold {} bytes, too few for the forcing window",
                limits.max_uniform_buffer_binding_size
            ),
        });
    }
    Ok(window)
}

/// Compile the kernel of `spec` into a compute pipeline.
fn compile(gpu: &Gpu, spec: &KernelSpec) -> Result<wgpu::ComputePipeline, GpuError> {
    let source = spec.wgsl();
    gpu.scoped("compiling the Lorenz 96 kernel", || {
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("ekp-gpu lorenz96"),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        Ok(gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("ekp-gpu lorenz96"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            }))
    })
}

impl ForwardModel for Lorenz96Gpu {
    fn name(&self) -> &str {
        MODEL
    }

    fn parameter_dim(&self) -> usize {
        2
    }

    fn output_dim(&self) -> usize {
        self.model.sub_windows() / self.model.config().fit_windows
    }

    fn evaluate_into(
        &self,
        params: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
    ) -> Result<(), ModelError> {
        self.evaluate_into_with_progress(params, out, &|_| {})
    }

    fn evaluate_into_with_progress(
        &self,
        params: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), ModelError> {
        self.check_shapes(params, out)?;
        let result = self
            .observables(params, progress)
            .map_err(|e| ModelError::Backend {
                model: MODEL.to_string(),
                message: e.to_string(),
            })?;
        out.copy_from(&result);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StepMap;

    /// The observing kernel's steps: each sub-window of `spw` steps, then
    /// its replay.
    #[test]
    fn replayed_steps_run_each_sub_window_twice() {
        let map = StepMap::Replayed { first: 10, spw: 3 };
        let js: Vec<usize> = (0..9).map(|v| map.step(v)).collect();
        assert_eq!(js, [10, 11, 12, 10, 11, 12, 13, 14, 15]);
        assert_eq!(StepMap::Direct.step(0), 1);
    }

    /// Every step of a dispatch finds its forcing inside the window, the
    /// window is never longer than allowed, a dispatch is cut only where the
    /// next step would not fit, and never to nothing.
    #[test]
    fn the_window_covers_every_step_of_the_dispatch() {
        for map in [
            StepMap::Direct,
            StepMap::Replayed { first: 1, spw: 1 },
            StepMap::Replayed { first: 7, spw: 4 },
            StepMap::Replayed { first: 3, spw: 9 },
        ] {
            for window in [1, 2, 4, 8, 16] {
                for v0 in 0..40 {
                    for len in 1..30 {
                        let (j0, width, taken) = map.window(v0, len, window);
                        assert!((1..=len).contains(&taken), "{map:?} {v0} {len}");
                        assert!(width <= window, "{map:?} {v0} {len} {window}");
                        for v in v0..v0 + taken {
                            let j = map.step(v);
                            assert!(j >= j0 && j < j0 + width, "{map:?} {v}: {j}");
                        }
                        if taken < len {
                            // The next step would widen the window too far.
                            let next = map.step(v0 + taken);
                            let lo = j0.min(next);
                            let hi = (j0 + width - 1).max(next);
                            assert!(hi - lo + 1 > window, "{map:?} {v0} {len} {window}");
                        }
                    }
                }
            }
        }
    }
}
