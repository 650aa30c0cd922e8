module gitseal.dev/benches/floor

go 1.26
