//! The Vagrantfile cannot be brought up here (no hypervisor), so check what can be checked: Ruby accepts
//! its syntax and it defines the two documented hosts.

use std::path::Path;

use calico_lab::cmd::Cmd;

#[test]
fn vagrantfile_is_valid_ruby_with_two_hosts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Vagrantfile");
    let out = Cmd::new(["ruby", "-c", path.to_str().unwrap()])
        .run()
        .expect("ruby must be installed (the README's test command installs it)");
    assert!(out.stdout.contains("Syntax OK"), "{}", out.stdout);
    let text = std::fs::read_to_string(&path).unwrap();
    for expected in [
        "172.17.8.101",
        "172.17.8.102",
        "debian/bookworm64",
        "calicoctl",
    ] {
        assert!(text.contains(expected), "the Vagrantfile lacks {expected}");
    }
}
