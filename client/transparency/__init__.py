"""Reading logs from outside: `keyless monitor`, `keyless audit`, and the C2SP tile reader."""
