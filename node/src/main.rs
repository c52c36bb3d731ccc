//! `dualchain`: the node appliance's command line (see [`dualchain_node::cli`]).

#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    dualchain_node::cli::main()
}
