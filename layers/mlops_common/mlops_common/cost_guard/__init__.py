"""Cost guard: stop idle notebook instances, delete (and restore) idle endpoints, report the hourly saving.

Plain typed functions over boto3 clients; the Lambda handlers in functions/*_sweeper only wire them up.
"""
