//! Builds fwd's XDP program (`bpf/fwd_xdp.c`) with clang into `$OUT_DIR/fwd_xdp.o`, which
//! the AF_XDP backend embeds and loads with aya.
//!
//! Needs clang (Debian: `apt-get install clang`) and the kernel's UAPI headers
//! (linux-libc-dev, which every C toolchain here has); `BPF_CLANG` names another clang.
//! Without a working clang the engine still builds, without the program: cfg
//! `fwd_no_xdp_program` is set, a warning says why, and the AF_XDP backend then reports
//! itself unavailable at start (`backend = "auto"` takes TUN).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "bpf/fwd_xdp.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    println!("cargo:rustc-check-cfg=cfg(fwd_no_xdp_program)");
    let Some(out_dir) = env::var_os("OUT_DIR") else {
        println!("cargo:warning=OUT_DIR is not set; building without the XDP program");
        println!("cargo:rustc-cfg=fwd_no_xdp_program");
        return;
    };
    let object = PathBuf::from(out_dir).join("fwd_xdp.o");
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into());
    // <linux/types.h> includes <asm/types.h>, which Debian keeps in the multiarch directory;
    // clang -target bpf does not look there by itself.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{arch}-linux-gnu"));
    let built = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-c", SOURCE, "-o"])
        .arg(&object)
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            println!(
                "cargo:warning={clang} could not build {SOURCE}; building without AF_XDP: {}",
                stderr.lines().next().unwrap_or("")
            );
            println!("cargo:rustc-cfg=fwd_no_xdp_program");
        }
        Err(e) => {
            println!("cargo:warning={clang}: {e}; building without AF_XDP (apt-get install clang)");
            println!("cargo:rustc-cfg=fwd_no_xdp_program");
        }
    }
}
