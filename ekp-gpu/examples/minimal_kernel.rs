//! A minimal hand-written Lorenz 96 kernel next to [`Lorenz96Gpu::integrate_only`],
//! in one run: the reference for the crate's kernel speed.
//!
//! The minimal kernel is the least a GPU RK4 for Lorenz 96 can do: one
//! invocation per member, the sites written out, constant forcing, the state
//! read from and written back to a storage buffer once per dispatch of
//! `1000` steps. No forcing table, no divergence checks, no statistics.
//!
//! ```text
//! cargo run --release -p ekp-gpu --example minimal_kernel -- [members] [steps] [--evaluate]
//! ```
//!
//! Prints member-steps/s of both, for f32 and f64 (where supported) and for
//! 36 and 40 sites; with `--evaluate`, also of the whole default model run
//! (`evaluate`: spin-up, observed window and observables) at 36 sites.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use ekp_core::ForwardModel;
use ekp_gpu::{Lorenz96Gpu, MAX_STEPS_PER_DISPATCH, Precision};
use ekp_models::Lorenz96Config;
use nalgebra::DMatrix;

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let members: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let steps: usize = args.next().map_or(Ok(3_000), |a| a.parse())?;
    let evaluate = args.next().is_some_and(|a| a == "--evaluate");
    println!("members {members}, steps {steps}");
    // (precision, sites, minimal, ours) of every configuration that ran.
    let mut summary: Vec<(Precision, usize, f64, f64)> = Vec::new();
    for precision in [Precision::F32, Precision::F64] {
        for sites in [36, 40] {
            let config = Lorenz96Config {
                sites,
                ..Lorenz96Config::default()
            };
            let model = match Lorenz96Gpu::new(config, precision) {
                Ok(m) => m,
                Err(e) => {
                    println!("{precision} {sites} sites: {e}");
                    continue;
                }
            };
            if sites == 36 && precision == Precision::F32 {
                println!("adapter: {}", model.adapter_info());
            }
            let reference = Minimal::new(sites, precision, members)?;
            let params = DMatrix::from_fn(2, members, |i, _| if i == 0 { 8.0 } else { 2.5 });
            // Warm up (buffers, first dispatch), then the best of 3 runs of
            // each, alternating (other load on the machine hits both alike).
            reference.run(MAX_STEPS_PER_DISPATCH.min(steps))?;
            model.integrate_only(&params, MAX_STEPS_PER_DISPATCH.min(steps))?;
            let (mut minimal, mut ours) = (0.0f64, 0.0f64);
            for _ in 0..3 {
                minimal = minimal.max(reference.run(steps)?);
                ours = ours.max(
                    model
                        .integrate_only(&params, steps)?
                        .member_steps_per_second(),
                );
            }
            println!(
                "{precision} {sites} sites: minimal kernel {minimal:.3e}, Lorenz96Gpu::integrate_only {ours:.3e} member-steps/s ({:.0} %)",
                100.0 * ours / minimal
            );
            summary.push((precision, sites, minimal, ours));
            if sites == 36 && evaluate {
                // The whole model: spin-up, observed window, observables.
                let begin = Instant::now();
                model.evaluate(&params)?;
                let rate = (members * model.cpu_model().member_steps()) as f64
                    / begin.elapsed().as_secs_f64();
                println!(
                    "{precision} {sites} sites: Lorenz96Gpu::evaluate (default run, {} steps) {rate:.3e} member-steps/s",
                    model.cpu_model().member_steps()
                );
            }
        }
    }
    println!("summary (member-steps/s; ours / minimal):");
    println!("precision sites   minimal kernel  Lorenz96Gpu  ratio");
    for (precision, sites, minimal, ours) in &summary {
        println!(
            "{:<9} {sites:>5} {minimal:>16.3e} {ours:>12.3e} {:>6.2}",
            precision.to_string(),
            ours / minimal
        );
    }
    for missing in [Precision::F32, Precision::F64] {
        if !summary.iter().any(|s| s.0 == missing) {
            println!("{missing}: not run on this adapter");
        }
    }
    Ok(())
}

/// The minimal kernel's WGSL: constant forcing 8, RK4, sites written out.
fn minimal_wgsl(n: usize, ty: &str, suffix: &str) -> String {
    let idx = |i: isize| i.rem_euclid(n as isize) as usize;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "@group(0) @binding(0) var<storage, read_write> state: array<{ty}>;\n\
         @group(0) @binding(1) var<uniform> steps: vec4<u32>;\n\
         @compute @workgroup_size(64)\n\
         fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
         \x20   let m = gid.x;\n\
         \x20   if (m >= steps.y) {{ return; }}\n\
         \x20   let f = 8.0{suffix};\n\
         \x20   let h = 0.015625{suffix};"
    );
    for i in 0..n {
        let _ = writeln!(s, "    var x{i} = state[m * {n}u + {i}u];");
    }
    let _ = writeln!(s, "    for (var t = 0u; t < steps.x; t = t + 1u) {{");
    let stage = |s: &mut String, k: &str, y: &str| {
        for i in 0..n {
            let ii = i as isize;
            let _ = writeln!(
                s,
                "        let {k}{i} = ({y}{} - {y}{}) * {y}{} - {y}{i} + f;",
                idx(ii + 1),
                idx(ii - 2),
                idx(ii - 1)
            );
        }
    };
    stage(&mut s, "a", "x");
    for i in 0..n {
        let _ = writeln!(s, "        let p{i} = x{i} + a{i} * (0.5 * h);");
    }
    stage(&mut s, "b", "p");
    for i in 0..n {
        let _ = writeln!(s, "        let q{i} = x{i} + b{i} * (0.5 * h);");
    }
    stage(&mut s, "c", "q");
    for i in 0..n {
        let _ = writeln!(s, "        let r{i} = x{i} + c{i} * h;");
    }
    stage(&mut s, "e", "r");
    for i in 0..n {
        let _ = writeln!(
            s,
            "        x{i} = x{i} + h / 6.0 * (a{i} + 2.0 * b{i} + 2.0 * c{i} + e{i});"
        );
    }
    let _ = writeln!(s, "    }}");
    for i in 0..n {
        let _ = writeln!(s, "    state[m * {n}u + {i}u] = x{i};");
    }
    let _ = writeln!(s, "}}");
    s
}

/// The minimal kernel, set up on its own device.
struct Minimal {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    members: usize,
}

impl Minimal {
    fn new(n: usize, precision: Precision, members: usize) -> Result<Self, Error> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            flags: wgpu::InstanceFlags::empty(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))?;
        let (ty, suffix, bytes, features) = match precision {
            Precision::F32 => ("f32", "f", 4, wgpu::Features::empty()),
            Precision::F64 => ("f64", "lf", 8, wgpu::Features::SHADER_F64),
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                required_features: features,
                required_limits: adapter.limits(),
                ..Default::default()
            }))?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(minimal_wgsl(n, ty, suffix).into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let state = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (members * n * bytes) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let init: Vec<u8> = (0..members * n)
            .flat_map(|k| {
                let v = 8.0 + 0.01 * ((k % 7) as f64 - 3.0);
                match precision {
                    Precision::F32 => (v as f32).to_le_bytes().to_vec(),
                    Precision::F64 => v.to_le_bytes().to_vec(),
                }
            })
            .collect();
        queue.write_buffer(&state, 0, &init);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: state.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: uniform.as_entire_binding(),
                },
            ],
        });
        Ok(Self {
            device,
            queue,
            pipeline,
            bind,
            uniform,
            members,
        })
    }

    /// Member-steps/s of `steps` steps.
    fn run(&self, steps: usize) -> Result<f64, Error> {
        let Self {
            device,
            queue,
            pipeline,
            bind,
            uniform,
            members,
        } = self;
        let members = *members;
        let begin = Instant::now();
        let mut done = 0;
        while done < steps {
            let block = MAX_STEPS_PER_DISPATCH.min(steps - done);
            let u = [block as u32, members as u32, 0, 0];
            let u: Vec<u8> = u.iter().flat_map(|v| v.to_le_bytes()).collect();
            queue.write_buffer(uniform, 0, &u);
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups((members as u32).div_ceil(64), 1, 1);
            }
            queue.submit([encoder.finish()]);
            done += block;
        }
        device.poll(wgpu::PollType::wait_indefinitely())?;
        Ok((members * steps) as f64 / begin.elapsed().as_secs_f64())
    }
}
