//! `mtkit build --packer`: the vsphere-iso template is parsed by python-hcl2 (the test venv)
//! and every block and attribute name is held against the builder's documented names
//! (packer-plugin-vsphere 2.1.0-dev's documentation page) and against what its oldest
//! supported version, 1.4.1, accepts (its generated HCL2 specs); the lists and the scripts
//! that extract them are in tests/fixtures/packer/. Packer itself cannot be installed
//! here, so `packer validate` is not run.

mod support;

use support::python_with;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use support::{fixture, have, mtkit, repo, stderr};

/// block → names, from a checked-in list (`block<TAB>name` lines, `#` comments).
fn names(file: &str) -> BTreeMap<String, BTreeSet<String>> {
    let text = fs::read_to_string(fixture(&format!("packer/{file}"))).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (b, n) = l.split_once('\t').unwrap();
        out.entry(b.into()).or_default().insert(n.into());
    }
    out
}

/// The template as python-hcl2 reads it (string literals keep their quotes there).
fn parse(py: &Path, file: &Path) -> Value {
    let o = Command::new(py)
        .args([
            "-c",
            "import hcl2, json, sys; print(json.dumps(hcl2.load(open(sys.argv[1]))))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "python-hcl2: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The keys of an object that are names (not python-hcl2's `__comments__` and the like).
fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with("__"))
        .cloned()
        .collect()
}

fn unquote(v: &Value) -> String {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

fn build(out: &Path, cfg: &Path, extra: &[&str]) {
    let o = mtkit()
        .args(["build", "--packer", "--out"])
        .arg(out)
        .arg("--config")
        .arg(cfg)
        .args(["--binary", "/bin/true"])
        // /bin/true cannot run on CentOS 6 and one config has no way in: this test is
        // about the template, so build anyway.
        .arg("--force")
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Checks every name of the template against the lists; returns the source block.
fn check_names(t: &Value) -> Value {
    let docs = names("vsphere-iso-2.1.0-dev.names");
    let spec = names("vsphere-iso-1.4.1.spec");
    let core = names("packer-core.names");
    let mut top = keys(t);
    top.sort();
    assert_eq!(top, ["build", "packer", "source", "variable"]);

    let packer = &t["packer"][0];
    for k in keys(packer) {
        assert!(core["packer"].contains(&k), "packer {{ {k} }}");
    }
    for p in packer["required_plugins"].as_array().unwrap() {
        for plugin in keys(p) {
            for k in keys(&p[&plugin]) {
                assert!(
                    core["required_plugins"].contains(&k),
                    "required_plugins {k}"
                );
            }
        }
    }
    for v in t["variable"].as_array().unwrap() {
        for name in keys(v) {
            for k in keys(&v[&name]) {
                assert!(core["variable"].contains(&k), "variable {name} {{ {k} }}");
            }
        }
    }
    for b in t["build"].as_array().unwrap() {
        for k in keys(b) {
            assert!(core["build"].contains(&k), "build {{ {k} }}");
        }
    }

    let sources = t["source"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    let src = &sources[0]["\"vsphere-iso\""]["\"mtkit\""];
    assert!(src.is_object(), "source \"vsphere-iso\" \"mtkit\": {t}");
    let mut checked = 0;
    for k in keys(src) {
        let (block, fields) = match &src[&k] {
            // Nested blocks (storage, network_adapters) come as lists of objects.
            Value::Array(items) if items.iter().all(|i| i.get("__is_block__").is_some()) => {
                (k.clone(), items.iter().flat_map(keys).collect::<Vec<_>>())
            }
            _ => ("source".to_string(), vec![k.clone()]),
        };
        if block != "source" {
            assert!(docs["source"].contains(&k), "block {k} not documented");
            assert!(
                spec["source"].contains(&k),
                "block {k} not accepted by 1.4.1"
            );
        }
        for f in fields {
            let (d, s) = (&docs[&block], &spec[&block]);
            assert!(
                d.contains(&f),
                "{block}.{f}: not in the 2.1.0-dev documentation"
            );
            assert!(s.contains(&f), "{block}.{f}: not accepted by 1.4.1");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} names checked");
    src.clone()
}

#[test]
fn kickstart_cd_template_parses_and_every_name_is_documented() {
    let Some(py) = python_with("hcl2") else {
        require!(
            false,
            "python-hcl2 not installed (scripts/test puts it in .venv)"
        );
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("appliance.toml");
    fs::write(
        &cfg,
        "[appliance]\nhostname = \"mt07.dr.example\"\ncpus = 6\nmemory = \"12G\"\n\
         root-password-hash = \"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\"\n\
         [network]\nbootproto = \"static\"\nip = \"10.20.30.77\"\n[disks]\nos-disk-size = \"120G\"\n[media]\nvolume-label = \"MTKS07\"\n\
         [packages]\nextra = [\"open-vm-tools\"]\n",
    )
    .unwrap();
    let out = d.path().join("out");
    build(&out, &cfg, &["--no-media"]);
    let file = out.join("mtkit.pkr.hcl");
    let text = fs::read_to_string(&file).unwrap();
    let t = parse(&py, &file);
    let src = check_names(&t);

    // The VM from appliance.toml; disk.EnableUUID a string, as extraConfig needs.
    assert_eq!(src["CPUs"], 6);
    assert_eq!(src["RAM"], 12288);
    assert_eq!(src["storage"][0]["disk_size"], 120 * 1024);
    let params = &src["configuration_parameters"];
    assert_eq!(params["\"disk.EnableUUID\""], "\"TRUE\"", "{params}");
    for k in keys(params) {
        let v = params[&k]
            .as_str()
            .unwrap_or_else(|| panic!("{k}: not a string: {params}"));
        assert!(
            v.starts_with('"') && v.ends_with('"'),
            "{k} = {v}: must be a string literal"
        );
    }
    assert_eq!(
        src["disk_controller_type"],
        serde_json::json!(["${var.disk_controller_type}"])
    );
    assert!(
        text.contains("default     = \"lsilogic-sas\""),
        "LSI Logic SAS by default (vmx check fails pvscsi)"
    );

    // The install: the datastore ISO, then the cd_files CD labelled as the kickstart expects,
    // with the ks= line typed for the second CD drive.
    assert_eq!(unquote(&src["cd_label"]), "MTKS07");
    assert_eq!(src["cd_files"][0], "\"${path.root}/packer-cd/*\"");
    assert_eq!(src["iso_paths"][0], "${var.install_iso}");
    assert_eq!(
        unquote(&src["boot_command"][0]),
        "<tab> ks=hd:sr1:/ks.cfg<enter>"
    );
    assert!(src.get("iso_url").is_none());
    let cd = out.join("packer-cd");
    assert_eq!(
        fs::read(cd.join("ks.cfg")).unwrap(),
        fs::read(out.join("ks.cfg")).unwrap()
    );
    assert_eq!(
        fs::read(cd.join("mtkit/appliance.toml")).unwrap(),
        fs::read(out.join("appliance.toml")).unwrap()
    );
    assert_eq!(
        fs::read(cd.join("mtkit/mtkit")).unwrap(),
        fs::read("/bin/true").unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(cd.join("mtkit/mtkit"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );

    // Communicator: root with a key; the static address of the kickstart by default.
    assert_eq!(unquote(&src["ssh_username"]), "root");
    assert_eq!(src["ssh_private_key_file"], "${var.ssh_private_key_file}");
    let var = |name: &str| {
        t["variable"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|v| v.get(format!("\"{name}\"")).cloned())
            .unwrap_or_else(|| panic!("variable {name}"))
    };
    assert_eq!(var("ssh_host")["default"], "\"10.20.30.77\"");
    // Seal last, then power off; the plugin version that keeps configuration_parameters.
    assert_eq!(
        unquote(&src["shutdown_command"]),
        "/usr/local/sbin/mtkit seal && /sbin/poweroff"
    );
    assert_eq!(src["convert_to_template"], true);
    let plugin = &t["packer"][0]["required_plugins"][0]["vsphere"];
    assert_eq!(unquote(&plugin["version"]), ">= 1.4.1");
    assert_eq!(unquote(&plugin["source"]), "github.com/vmware/vsphere");

    // Nothing secret in the file: credentials are variables without defaults.
    let pw = var("vcenter_password");
    assert_eq!(pw["sensitive"], true);
    assert!(pw.get("default").is_none());
    assert!(var("ssh_private_key_file").get("default").is_none());
    assert!(
        !text.contains("$6$saltsalt"),
        "the root hash stays out of the template"
    );
}

#[test]
fn remastered_template_needs_no_typing_and_pins_the_iso() {
    let Some(py) = python_with("hcl2") else {
        require!(
            false,
            "python-hcl2 not installed (scripts/test puts it in .venv)"
        );
        return;
    };
    require!(
        have("xorriso") && have("sha256sum"),
        "xorriso and sha256sum needed"
    );
    let d = tempfile::tempdir().unwrap();
    let src_iso = d.path().join("CentOS-6.6-x86_64-minimal.iso");
    let o = Command::new(repo().join("iso/fixture/make-centos6-iso.sh"))
        .arg(&src_iso)
        .output()
        .unwrap();
    require!(o.status.success(), "fixture ISO: {}", stderr(&o));
    let cfg = d.path().join("appliance.toml");
    fs::write(&cfg, "[network]\nbootproto = \"dhcp\"\nip = \"\"\n").unwrap();
    let out = d.path().join("out");
    build(&out, &cfg, &["--source-iso", src_iso.to_str().unwrap()]);
    let t = parse(&py, &out.join("mtkit.pkr.hcl"));
    let src = check_names(&t);
    assert_eq!(src["iso_url"], "\"${path.root}/mt-install.iso\"");
    let sum = Command::new("sha256sum")
        .arg(out.join("mt-install.iso"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    let hex = sum.split_whitespace().next().unwrap();
    assert_eq!(unquote(&src["iso_checksum"]), format!("sha256:{hex}"));
    for absent in ["boot_command", "cd_files", "cd_label", "iso_paths"] {
        assert!(
            src.get(absent).is_none(),
            "{absent} with the remastered ISO"
        );
    }
    assert!(!out.join("packer-cd").exists());
    let has_install_iso = t["variable"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.get("\"install_iso\"").is_some());
    assert!(!has_install_iso);
    // DHCP: Packer takes the address VMware Tools reports.
    let ssh_host = t["variable"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|v| v.get("\"ssh_host\"").cloned())
        .unwrap();
    assert_eq!(ssh_host["default"], "\"\"");
}
