def render(results):
    import json
    return "```\n" + json.dumps(results, indent=1, default=str)[:5000] + "\n```\n"
