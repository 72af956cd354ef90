from mailvet.cli import main

main()
