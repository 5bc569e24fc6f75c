"""A project skill in Python: count the open items of the demo web app's todo list."""

from guiagent.skills import SkillContext, SkillError, skill


@skill(applies_to={"url": "*/demo/webapp/*"}, params={"item": "the todo item to mark complete"})
async def demo_complete_todo(ctx: SkillContext, item: str) -> str:
    """Mark one todo item of the demo web app complete, and report how many are left."""
    page = getattr(ctx.env, "page", None)
    if page is None:
        raise SkillError("demo_complete_todo works in the browser only")
    await ctx.run_steps([{"click": {"text": "Complete", "near": item}}])
    counter = await page.inner_text("#todo-counter")
    return f"completed {item!r}; {counter}"
