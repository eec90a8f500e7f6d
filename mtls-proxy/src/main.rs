//! `mtls-proxy` command line: `run`, `status`, `ca init`, `ca issue`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mtls_proxy::ca::{Ca, LeafRequest};
use mtls_proxy::config::Config;
use mtls_proxy::duration::HumanDuration;
use mtls_proxy::spiffe::SpiffeId;

#[derive(Parser)]
#[command(
    name = "mtls-proxy",
    version,
    about = "Palisade's mTLS companion proxy"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy until SIGTERM/SIGINT (SIGHUP reloads certificates).
    Run {
        /// Config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a config and report mode, policy, FIPS, certificates and expiry.
    /// Exits 1 if the proxy could not run with it.
    Status {
        /// Config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// The built-in certificate authority.
    Ca {
        #[command(subcommand)]
        cmd: CaCmd,
    },
}

#[derive(Subcommand)]
enum CaCmd {
    /// Create a CA (ca.pem, ca-key.pem) in DIR.
    Init {
        /// Directory for the CA files.
        #[arg(long)]
        dir: PathBuf,
        /// Common name of the CA certificate.
        #[arg(long, default_value = "Palisade mtls-proxy CA")]
        cn: String,
        /// Lifetime of the CA certificate.
        #[arg(long, default_value = "3650d")]
        ttl: HumanDuration,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue a leaf certificate (cert.pem, key.pem, ca.pem) into OUT.
    Issue {
        /// CA directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// SPIFFE id for the URI SAN, e.g. spiffe://td/ns/x/sa/y.
        #[arg(long)]
        spiffe_id: Option<String>,
        /// DNS SAN (repeatable).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// Subject common name.
        #[arg(long)]
        cn: Option<String>,
        /// Lifetime, e.g. 24h.
        #[arg(long, default_value = "24h")]
        ttl: HumanDuration,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MTLS_PROXY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result: Result<(), String> = match cli.cmd {
        Cmd::Run { config } => match Config::load(&config) {
            Err(e) => Err(e.to_string()),
            Ok(cfg) => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
                .and_then(|rt| {
                    rt.block_on(mtls_proxy::app::run(cfg))
                        .map_err(|e| e.to_string())
                }),
        },
        Cmd::Status { config } => match Config::load(&config) {
            Err(e) => Err(e.to_string()),
            Ok(cfg) => {
                let (text, ok) = mtls_proxy::app::status(&cfg);
                print!("{text}");
                if ok {
                    Ok(())
                } else {
                    Err("not runnable as configured (see above)".into())
                }
            }
        },
        Cmd::Ca {
            cmd:
                CaCmd::Init {
                    dir,
                    cn,
                    ttl,
                    force,
                },
        } => Ca::init(&dir, &cn, ttl.0, force)
            .map(|_| println!("CA written to {}", dir.display()))
            .map_err(|e| e.to_string()),
        Cmd::Ca {
            cmd:
                CaCmd::Issue {
                    dir,
                    spiffe_id,
                    dns,
                    cn,
                    ttl,
                    out,
                },
        } => (|| {
            if spiffe_id.is_none() && dns.is_empty() && cn.is_none() {
                return Err("give at least one of --spiffe-id, --dns, --cn".to_string());
            }
            let ca = Ca::load(&dir).map_err(|e| e.to_string())?;
            let id = spiffe_id
                .as_deref()
                .map(SpiffeId::parse)
                .transpose()
                .map_err(|e| e.to_string())?;
            let mut req = LeafRequest::with_ttl(id, ttl.0).map_err(|e| e.to_string())?;
            req.dns_names = dns;
            req.common_name = cn;
            let issued = ca.issue(&req).map_err(|e| e.to_string())?;
            issued
                .write_to(&out, ca.cert_pem())
                .map_err(|e| e.to_string())?;
            println!("certificate written to {} (valid {ttl})", out.display());
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtls-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
