//! Writes ferrolb's CRD manifests to `deploy/crds/`, prints them, or checks
//! that the checked-in ones are current.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrolb_crds::generate;

/// Generate ferrolb's CustomResourceDefinition manifests from the Rust types.
#[derive(Debug, Parser)]
#[command(name = "crdgen")]
struct Args {
    /// Directory to write (or check) the manifests in.
    #[arg(long, env = "CRDGEN_OUT", default_value_os_t = generate::default_output_dir())]
    out: PathBuf,
    /// Print all manifests to stdout as one YAML stream instead of writing files.
    #[arg(long, env = "CRDGEN_STDOUT", conflicts_with = "check")]
    stdout: bool,
    /// Write nothing; exit with status 1 if any manifest is missing or differs.
    #[arg(long, env = "CRDGEN_CHECK")]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = if args.stdout {
        generate::render_all().map(|yaml| print!("{yaml}"))
    } else if args.check {
        generate::check_all(&args.out)
    } else {
        generate::write_all(&args.out).map(|paths| {
            for path in paths {
                eprintln!("wrote {}", path.display());
            }
        })
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}
