# Parameter files: the config each job reads, written as JSON and handed to
# its command as a file. A file is rewritten only when its content changes
# (its params), so the jobs reading it rerun exactly then.


rule write_parameters:
    output:
        "results/parameters/{name}.json",
    localrule: True
    params:
        content=parameters,
    run:
        from hnn_surrogate.artifacts import write_json

        write_json(params.content, output[0])
