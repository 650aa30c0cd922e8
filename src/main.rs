fn main() {
    print!("{}", gitseal::api::crds_yaml());
}
