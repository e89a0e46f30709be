//! `healthstream`: CLI and wiring only.

mod bench_cmd;
mod cli;
mod instances_cmd;
mod pack_cmd;
mod simulate_cmd;
mod wiring;

use clap::Parser;

/// The process allocates and frees many small values per record (decoded inputs, keys,
/// outputs), often on another thread than the one that made them (a stage's task moves
/// between the runtime's threads; a checkpoint's batch is freed on a blocking thread).
/// jemalloc does that with less work than the system allocator (whose consolidation and
/// chunk unlinking were a fifth of the pipeline's CPU) and than mimalloc (a sixth of the
/// process, most of it collecting blocks freed by other threads): see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    healthstream_telemetry::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
