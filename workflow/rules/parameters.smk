# Parameter files: the config each job reads, written as JSON and handed to
# its command as a file. A file is rewritten only when its content changes
# (its params, JSON with sorted keys), so the jobs reading it rerun exactly then.


rule write_parameters:
    output:
        "results/parameters/{name}.json",
    log:
        "logs/write_parameters/{name}.log",
    localrule: True
    params:
        content=parameters,
    run:
        from hnn_surrogate.artifacts import write_json

        write_json(json.loads(params.content), output[0])
