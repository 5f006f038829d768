#!/usr/bin/env julia
# An ekp `worker` model in Julia: the model is compiled once, then serves
# members for the whole calibration (ekp's answer to `pmap` over `addprocs`).
#
#   [model]
#   kind = "worker"
#   program = "julia"
#   args = ["--project=.", "decay_worker.jl"]   # needs JSON.jl: ] add JSON
#
# Protocol: one JSON request per line on stdin,
#   {"iteration": 0, "member": 1, "parameters": {"rate": 0.5, "initial": 10.0}, "folder": "..."}
# one JSON answer per line on stdout: {"values": [...]} or {"error": "..."}.
# Logs go to stderr; end of input: exit.
import JSON

decay(rate, initial) = [initial * exp(-rate * t) for t in 0.0:4.0]

for line in eachline(stdin)
    isempty(strip(line)) && continue
    answer = try
        p = JSON.parse(line)["parameters"]
        Dict("values" => decay(p["rate"], p["initial"]))
    catch e
        Dict("error" => sprint(showerror, e))
    end
    println(stdout, JSON.json(answer))
    flush(stdout)
end
