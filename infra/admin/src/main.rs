//! `wapisnap-admin`: see the crate's library for the commands.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = wapisnap::config::Env::from_process();
    match wapisnap_admin::run(&args, &env, chrono::Utc::now(), &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wapisnap-admin: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
