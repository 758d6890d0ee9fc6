//! Asks the SSH agent at $SSH_AUTH_SOCK how many keys it holds (the agent protocol's
//! REQUEST_IDENTITIES) and prints `keys: N`: the test of `RUN --mount=type=ssh`, built
//! static so it runs in a `FROM scratch` image.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn main() {
    let path = std::env::var("SSH_AUTH_SOCK").expect("SSH_AUTH_SOCK is not set");
    let mut agent = UnixStream::connect(&path).expect("cannot reach the agent");
    agent.write_all(&[0, 0, 0, 1, 11]).expect("cannot ask the agent");
    let mut length = [0u8; 4];
    agent.read_exact(&mut length).expect("no answer");
    let mut answer = vec![0u8; u32::from_be_bytes(length) as usize];
    agent.read_exact(&mut answer).expect("a short answer");
    assert_eq!(answer[0], 12, "not an identities answer");
    let keys = u32::from_be_bytes([answer[1], answer[2], answer[3], answer[4]]);
    println!("keys: {keys}");
}
